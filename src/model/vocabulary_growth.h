// Fine-tuning on a text with tokens the pretrained model never saw (--init_from): the
// vocabulary grows (the old ids first, unchanged; data::Vocabulary of the old tokens
// followed by the new ones), and so do the parameters indexed by token.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "model/language_model.h"

namespace distrnn::model {

// Copies every parameter of `from` (vocabulary V) into `to` (the same architecture with
// vocabulary V' >= V). Parameters of the same shape are copied whole; those whose first
// dimension is the vocabulary (the embedding, the decoder's weight and bias) get their
// first V rows, and rows V..V'-1 keep `to`'s initialisation. InvalidArgument naming the
// parameter when the two models differ otherwise.
absl::Status CopyGrowingVocabulary(LanguageModel& from, LanguageModel& to);

}  // namespace distrnn::model
