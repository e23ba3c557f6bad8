#include "train/run_state.h"

namespace distrnn::train {

void to_json(nlohmann::json& j, const RunProgress& p) {
  j = {{"epoch", p.epoch},
       {"step", p.step},
       {"global_step", p.global_step},
       {"lr", p.lr},
       {"schedule_best_loss", p.schedule_best_loss},
       {"best_epoch", p.best_epoch},
       {"best_metric", p.best_metric},
       {"best_valid", p.best_valid},
       {"epoch_loss_sum", p.epoch_loss_sum},
       {"epoch_units", p.epoch_units},
       {"epoch_correct", p.epoch_correct}};
}

void from_json(const nlohmann::json& j, RunProgress& p) {
  j.at("epoch").get_to(p.epoch);
  j.at("step").get_to(p.step);
  j.at("global_step").get_to(p.global_step);
  j.at("lr").get_to(p.lr);
  j.at("schedule_best_loss").get_to(p.schedule_best_loss);
  j.at("best_epoch").get_to(p.best_epoch);
  j.at("best_metric").get_to(p.best_metric);
  j.at("best_valid").get_to(p.best_valid);
  j.at("epoch_loss_sum").get_to(p.epoch_loss_sum);
  j.at("epoch_units").get_to(p.epoch_units);
  j.at("epoch_correct").get_to(p.epoch_correct);
}

void to_json(nlohmann::json& j, const EpochDecision& d) {
  j = {{"valid", d.valid}, {"next_lr", d.next_lr}, {"best", d.best}, {"stop", d.stop}, {"error", d.error}};
}

void from_json(const nlohmann::json& j, EpochDecision& d) {
  j.at("valid").get_to(d.valid);
  j.at("next_lr").get_to(d.next_lr);
  j.at("best").get_to(d.best);
  j.at("stop").get_to(d.stop);
  j.at("error").get_to(d.error);
}

void to_json(nlohmann::json& j, const TestRecord& r) {
  j = {{"present", r.present}, {"figures", r.figures}, {"error", r.error}};
}

void from_json(const nlohmann::json& j, TestRecord& r) {
  j.at("present").get_to(r.present);
  j.at("figures").get_to(r.figures);
  j.at("error").get_to(r.error);
}

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
