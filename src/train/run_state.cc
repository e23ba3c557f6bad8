#include "train/run_state.h"

namespace distrnn::train {

absl::Status BroadcastStatus(comm::Communicator& comm, const absl::Status& rank0_status) {
  // {code, message}: the code keeps bad input (exit 2) apart from other failures.
  nlohmann::json record = {{"code", static_cast<int>(rank0_status.code())},
                           {"message", std::string(rank0_status.message())}};
  absl::Status sent = BroadcastRecord(comm, record);
  if (!sent.ok()) return sent;
  const auto code = static_cast<absl::StatusCode>(record.at("code").get<int>());
  return absl::Status(code, record.at("message").get<std::string>());
}

}  // namespace distrnn::train
