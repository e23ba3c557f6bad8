// `distrnn generate --checkpoint=... --prompt=... --length=N --temperature=T --seed=S`:
// samples text from a language-model checkpoint (characters or PTB words).
#pragma once

#include "absl/status/status.h"

namespace distrnn::app {

absl::Status RunGenerate();

}  // namespace distrnn::app
