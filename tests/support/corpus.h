// Generated PTB-like word corpora for the tests that run the distrnn binary, and the
// data/ptb directory layout the binary reads.
#pragma once

#include <string>

#include "support/temp_dir.h"

namespace distrnn::testing {

// `lines` lines of 6 words from a 10-word vocabulary, shifted by `offset` (one split per offset).
std::string SmallWordCorpus(int lines, int offset);
// `lines` lines of 7 words from a 12-word vocabulary, shifted by `offset` (the tiny LM of resume and fault runs).
std::string TinyLmCorpus(int lines, int offset);

// Writes dir/data/ptb/ptb.{train,valid,test}.txt: `train_lines` lines, then `eval_lines` each (offsets 0, 1, 2).
void WritePtbCorpus(const TempDir& dir, std::string (*corpus)(int lines, int offset), int train_lines,
                    int eval_lines);

}  // namespace distrnn::testing
