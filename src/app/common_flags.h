// Flags shared by every task of `distrnn train`, and the typed options built from them.
// Task-specific flags live in <task>_task.cc; a task reads the shared ones through the
// declarations below. Libraries never read flags; only src/app does.
#pragma once

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "common/device.h"
#include "model/model_config.h"

ABSL_DECLARE_FLAG(std::string, task);
ABSL_DECLARE_FLAG(std::string, cell);
ABSL_DECLARE_FLAG(int32_t, num_layers);
ABSL_DECLARE_FLAG(int32_t, hidden_size);
ABSL_DECLARE_FLAG(int32_t, embedding_size);
ABSL_DECLARE_FLAG(double, dropout);
ABSL_DECLARE_FLAG(double, init_scale);
ABSL_DECLARE_FLAG(std::string, init);
ABSL_DECLARE_FLAG(bool, bidirectional);
ABSL_DECLARE_FLAG(int32_t, batch_size);
ABSL_DECLARE_FLAG(int32_t, eval_batch_size);
ABSL_DECLARE_FLAG(int32_t, max_epochs);
ABSL_DECLARE_FLAG(int64_t, max_steps);
ABSL_DECLARE_FLAG(double, lr);
ABSL_DECLARE_FLAG(double, clip_norm);
ABSL_DECLARE_FLAG(int32_t, log_every);
ABSL_DECLARE_FLAG(double, bucket_mb);
ABSL_DECLARE_FLAG(double, first_bucket_mb);
ABSL_DECLARE_FLAG(int64_t, check_replicas_every);
ABSL_DECLARE_FLAG(std::string, optimizer);
ABSL_DECLARE_FLAG(std::string, lr_schedule);
ABSL_DECLARE_FLAG(double, lr_decay);
ABSL_DECLARE_FLAG(int32_t, decay_start_epoch);
ABSL_DECLARE_FLAG(double, clip_value);
ABSL_DECLARE_FLAG(int32_t, micro_batches);
ABSL_DECLARE_FLAG(int32_t, warmup_steps);
ABSL_DECLARE_FLAG(int64_t, checkpoint_every_steps);
ABSL_DECLARE_FLAG(int32_t, keep_checkpoints);
ABSL_DECLARE_FLAG(bool, test_each_epoch);
ABSL_DECLARE_FLAG(bool, overlap_allreduce);
ABSL_DECLARE_FLAG(bool, sparse_embedding_grad);
ABSL_DECLARE_FLAG(std::string, resume);
ABSL_DECLARE_FLAG(std::string, fault_kind);
ABSL_DECLARE_FLAG(std::string, on_nonfinite);
ABSL_DECLARE_FLAG(int64_t, max_skipped);

namespace distrnn::app {

// How and where this process runs, whatever the task.
struct RunOptions {
  std::string task;      // a name in the task registry (task_registry.h)
  std::string data_dir;  // as given (resolved by the task that needs it)
  std::string run_dir;   // metrics.jsonl and checkpoints ("" = none)
  std::string comm;      // auto | local | mpi | nccl
  common::DeviceKind device = common::DeviceKind::kAuto;  // --device
  bool allow_shared_gpu = false;                          // more ranks than GPUs on a node
  common::Precision precision = common::Precision::kFp32;
  bool deterministic = false;                             // deterministic cuDNN/cuBLAS
  int threads = 0;       // 0: cores of this process / ranks on the node
  bool flush_denormals = true;  // FTZ/DAZ on the CPU threads (common/runtime.h)
  int free_heap_kept_mb = 2048;  // freed heap kept for reuse (common/runtime.h)
  uint64_t seed = 0;
  double collective_timeout_s = 0.0;  // MPI watchdog (0: off)
  int fault_rank = -1;                // testing aid, see --fault_step
  int64_t fault_step = 0;
};
absl::StatusOr<RunOptions> RunOptionsFromFlags();

// --cell, --num_layers, --hidden_size, --dropout, --bidirectional; input_size is
// --embedding_size (or hidden size when 0).
absl::StatusOr<model::StackConfig> StackConfigFromFlags();

// A left-to-right sequence model's config (LM, copy task) from the shared flags;
// vocab_size is 1 until the data is read. `what` names the task in the error for
// --bidirectional.
absl::StatusOr<model::LanguageModelConfig> LanguageModelConfigFromFlags(const std::string& what);
// How the language model's parameters start, for the configuration table.
std::string InitText(const model::LanguageModelConfig& lm);
// ", fused LSTM kernel on CPU" when --fused_lstm applies to this stack's cell, else "" (model rows).
std::string KernelText(const model::StackConfig& stack);

// Checks of flags every task shares (positive sizes, ranges).
absl::Status ValidateCommonFlags();

}  // namespace distrnn::app
