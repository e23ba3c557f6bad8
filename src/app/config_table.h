// The resolved configuration as a two-column table, printed by rank 0 at start so every
// run's log says exactly what ran.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace distrnn::app {

using ConfigRows = std::vector<std::pair<std::string, std::string>>;
std::string FormatConfigTable(const ConfigRows& rows);

}  // namespace distrnn::app
