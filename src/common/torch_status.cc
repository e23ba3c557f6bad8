#include "common/torch_status.h"

#include <c10/util/Exception.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace distrnn::common {
namespace {
std::string FirstLine(absl::string_view text) {
  auto end = text.find('\n');
  return std::string(text.substr(0, end));
}
}  // namespace

absl::Status StatusFromCurrentException(absl::string_view context) {
  try {
    throw;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(context, ": ", FirstLine(e.what_without_backtrace())));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(context, ": ", FirstLine(e.what())));
  } catch (...) {
    return absl::InternalError(absl::StrCat(context, ": unknown exception"));
  }
}

}  // namespace distrnn::common
