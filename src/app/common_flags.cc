#include "app/common_flags.h"

#include <cmath>
#include <limits>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/validation.h"

ABSL_FLAG(std::string, task, "ptb_lm",
          "Task: ptb_lm (PTB words), char_lm (any text file), copy (synthetic copy task) or imdb (sentiment).");
ABSL_FLAG(std::string, data_dir, "", "Data sets directory (else $DISTRNN_DATA, ../shared/data, ./data).");
ABSL_FLAG(std::string, comm, "auto",
          "Communicator: auto (under an MPI launcher: nccl on CUDA, else mpi; else local), local, mpi or nccl.");
ABSL_FLAG(std::string, device, "auto",
          "Device of each rank: auto (CUDA when visible), cpu or cuda (cuda:(local rank % visible GPUs)).");
ABSL_FLAG(bool, allow_shared_gpu, false, "Let more ranks than visible GPUs share a node's GPUs.");
ABSL_FLAG(std::string, precision, "fp32", "fp32, or bf16 (autocast of the forward pass on CUDA; fp32 weights).");
ABSL_FLAG(bool, deterministic, false, "Deterministic cuDNN/cuBLAS kernels, no TF32 (for equivalence checks).");
ABSL_FLAG(int32_t, threads, 0, "Intra-op CPU threads per rank (0: allowed cores / ranks on this node).");
ABSL_FLAG(bool, flush_denormals, true,
          "Flush denormal floats to zero on the CPU threads: gradients that decay through long sequences "
          "otherwise slow the vector units ~10x (README: IMDB speed).");
ABSL_FLAG(int32_t, free_heap_kept_mb, 2048,
          "Freed heap memory kept for reuse (no page faults) before it goes back to the kernel, checked after "
          "each step (0: never returned). Bounds the RSS when tensor sizes vary per step (README: IMDB memory).");
ABSL_FLAG(uint64_t, seed, 1234, "Random seed (initialisation, dropout, data order, sampling).");
ABSL_FLAG(std::string, run_dir, "runs/latest", "Directory for metrics.jsonl and checkpoints ('' for none).");
ABSL_FLAG(double, collective_timeout_s, 600.0,
          "MPI/NCCL: end the job when a collective waits longer than this for a stalled peer (0: never). Must "
          "exceed rank 0's longest evaluation, which the other ranks wait through (README: Fault tolerance).");
ABSL_FLAG(int32_t, fault_rank, -1, "Testing aid: the rank that fails at --fault_step (how: --fault_kind).");
ABSL_FLAG(int64_t, fault_step, 0, "Testing aid: the global step (1-based) at which --fault_rank fails (0: off).");
ABSL_FLAG(std::string, fault_kind, "exit",
          "Testing aid: exit (abruptly, before the step), nan_loss or nan_grad (a NaN in the step's loss or gradient).");
ABSL_FLAG(std::string, on_nonfinite, "stop",
          "A non-finite loss or gradient on any rank: stop (exit 3, naming step and rank) or skip the update.");
ABSL_FLAG(int64_t, max_skipped, 10, "--on_nonfinite=skip: stop once more than this many steps were skipped.");

ABSL_FLAG(std::string, cell, "lstm", "Recurrent cell: rnn_tanh, rnn_relu, lstm, gru, mlstm or mgru.");
ABSL_FLAG(int32_t, num_layers, 2, "Recurrent layers.");
ABSL_FLAG(int32_t, hidden_size, 200, "Hidden units per layer (and direction).");
ABSL_FLAG(int32_t, embedding_size, 0, "Embedding size (0: same as --hidden_size).");
ABSL_FLAG(double, dropout, 0.0, "Dropout on non-recurrent connections (Zaremba).");
ABSL_FLAG(double, init_scale, 0.1, "Parameters are initialised uniformly in [-init_scale, init_scale].");
ABSL_FLAG(std::string, init, "uniform",
          "Language models: uniform (every parameter in +-init_scale) or torch (libtorch's per-module defaults, as a "
          "PyTorch script: embedding N(0, 1), recurrent and decoder weights U(+-1/sqrt(fan in))).");
ABSL_FLAG(bool, bidirectional, false, "Bidirectional recurrent stack (classification).");
ABSL_FLAG(bool, fused_lstm, false,
          "LSTM on the CPU: run each layer through distrnn's own kernel (one input-projection matmul, saved "
          "activations, hand-written backward) instead of libtorch's. Same results (README: Recurrent layers).");

ABSL_FLAG(int32_t, batch_size, 20, "Global batch size, split evenly over ranks.");
ABSL_FLAG(int32_t, eval_batch_size, 10, "Batch size for validation and test (rank 0 alone).");
ABSL_FLAG(int32_t, max_epochs, 13, "Epochs to train.");
ABSL_FLAG(int64_t, max_steps, 0, "Stop after this many optimizer steps in total (0: no limit).");
ABSL_FLAG(double, lr, 1.0, "Learning rate.");
ABSL_FLAG(double, clip_norm, 5.0, "Clip gradients to this global L2 norm (0: no clipping).");
ABSL_FLAG(int32_t, log_every, 0, "Steps between progress lines (0: ten per epoch).");
ABSL_FLAG(double, bucket_mb, 25.0, "Gradient all-reduce bucket size in MiB.");
ABSL_FLAG(double, first_bucket_mb, 1.0,
          "Size cap in MiB of the first gradient bucket (the last layers' gradients, ready first in backward).");
ABSL_FLAG(bool, overlap_allreduce, false,
          "Start each gradient bucket's all-reduce during backward, as soon as its gradients are ready.");
ABSL_FLAG(bool, sparse_embedding_grad, true,
          "Input embeddings (untied): backward emits the looked-up rows only, added into the dense gradient, and "
          "across ranks only those rows are exchanged (all-gather) instead of all-reducing the whole table; the "
          "same result. false: a dense table gradient every step, through the buckets.");
ABSL_FLAG(int64_t, check_replicas_every, 0, "Every K steps all ranks compare a parameter checksum (0: never).");
ABSL_FLAG(std::string, optimizer, "", "sgd or adam ('': the task's default: sgd for LMs, adam otherwise).");
ABSL_FLAG(std::string, lr_schedule, "",
          "constant, zaremba (fixed decay after --decay_start_epoch) or plateau ('': the task's default).");
ABSL_FLAG(double, lr_decay, 0.5, "Learning-rate decay factor (zaremba, plateau).");
ABSL_FLAG(int32_t, decay_start_epoch, 4, "zaremba schedule: epochs at the initial lr (Zaremba's max_epoch).");
ABSL_FLAG(double, clip_value, 0.0, "Clamp every gradient element to [-v, v] before --clip_norm (0: off).");
ABSL_FLAG(int32_t, micro_batches, 1,
          "Gradient accumulation: each rank's share of the global batch runs as this many micro-batches.");
ABSL_FLAG(int32_t, warmup_steps, 5, "Steps at the start of each epoch left out of throughput figures.");
ABSL_FLAG(int64_t, checkpoint_every_steps, 0, "Write a checkpoint every N steps besides one per epoch (0: off).");
ABSL_FLAG(bool, test_each_epoch, false,
          "Also evaluate the test split after each epoch (logged beside valid; never used for a decision).");
ABSL_FLAG(int32_t, keep_checkpoints, 2, "Newest step checkpoints kept in --run_dir (older ones are removed).");
ABSL_FLAG(std::string, resume, "none",
          "auto (the run dir's latest checkpoint if there is one), none, or a checkpoint path.");

namespace distrnn::app {

absl::StatusOr<RunOptions> RunOptionsFromFlags() {
  RunOptions run;
  run.task = absl::GetFlag(FLAGS_task);
  run.data_dir = absl::GetFlag(FLAGS_data_dir);
  run.run_dir = absl::GetFlag(FLAGS_run_dir);
  run.comm = absl::GetFlag(FLAGS_comm);
  ASSIGN_OR_RETURN(run.device, common::ParseDeviceKind(absl::GetFlag(FLAGS_device)));
  run.allow_shared_gpu = absl::GetFlag(FLAGS_allow_shared_gpu);
  ASSIGN_OR_RETURN(run.precision, common::ParsePrecision(absl::GetFlag(FLAGS_precision)));
  run.deterministic = absl::GetFlag(FLAGS_deterministic);
  run.threads = absl::GetFlag(FLAGS_threads);
  if (run.threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  run.flush_denormals = absl::GetFlag(FLAGS_flush_denormals);
  run.free_heap_kept_mb = absl::GetFlag(FLAGS_free_heap_kept_mb);
  if (run.free_heap_kept_mb < 0) return absl::InvalidArgumentError("--free_heap_kept_mb must be >= 0");
  run.seed = absl::GetFlag(FLAGS_seed);
  run.collective_timeout_s = absl::GetFlag(FLAGS_collective_timeout_s);
  if (!(run.collective_timeout_s >= 0) || !std::isfinite(run.collective_timeout_s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--collective_timeout_s must be finite and >= 0, got ", run.collective_timeout_s));
  }
  run.fault_rank = absl::GetFlag(FLAGS_fault_rank);
  run.fault_step = absl::GetFlag(FLAGS_fault_step);
  return run;
}

absl::Status ValidateCommonFlags() {
  RETURN_IF_ERROR(common::RequirePositive(absl::GetFlag(FLAGS_hidden_size), "hidden_size"));
  RETURN_IF_ERROR(common::RequirePositive(absl::GetFlag(FLAGS_num_layers), "num_layers"));
  RETURN_IF_ERROR(common::RequirePositive(absl::GetFlag(FLAGS_batch_size), "batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(absl::GetFlag(FLAGS_eval_batch_size), "eval_batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(absl::GetFlag(FLAGS_max_epochs), "max_epochs"));
  if (absl::GetFlag(FLAGS_embedding_size) < 0) return absl::InvalidArgumentError("--embedding_size must be >= 0");
  if (absl::GetFlag(FLAGS_max_steps) < 0) return absl::InvalidArgumentError("--max_steps must be >= 0");
  if (!(absl::GetFlag(FLAGS_lr) > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("--lr must be positive, got ", absl::GetFlag(FLAGS_lr)));
  }
  if (absl::GetFlag(FLAGS_clip_norm) < 0) return absl::InvalidArgumentError("--clip_norm must be >= 0");
  if (!(absl::GetFlag(FLAGS_bucket_mb) > 0)) return absl::InvalidArgumentError("--bucket_mb must be positive");
  if (!(absl::GetFlag(FLAGS_first_bucket_mb) > 0)) {
    return absl::InvalidArgumentError("--first_bucket_mb must be positive");
  }
  if (absl::GetFlag(FLAGS_check_replicas_every) < 0) {
    return absl::InvalidArgumentError("--check_replicas_every must be >= 0");
  }
  if (!(absl::GetFlag(FLAGS_init_scale) > 0)) return absl::InvalidArgumentError("--init_scale must be positive");
  // "nan" and "inf" parse as doubles: refuse them here rather than in libtorch (exit 1) or
  // as a diverged run (issue 8's flagfile fuzzing).
  for (const auto& [name, value] : {std::pair<const char*, double>{"lr", absl::GetFlag(FLAGS_lr)},
                                    {"init_scale", absl::GetFlag(FLAGS_init_scale)},
                                    {"dropout", absl::GetFlag(FLAGS_dropout)},
                                    {"bucket_mb", absl::GetFlag(FLAGS_bucket_mb)},
                                    {"first_bucket_mb", absl::GetFlag(FLAGS_first_bucket_mb)},
                                    {"collective_timeout_s", absl::GetFlag(FLAGS_collective_timeout_s)}}) {
    if (!std::isfinite(value)) return absl::InvalidArgumentError(absl::StrCat("--", name, " must be finite, got ", value));
  }
  // These scale float32 tensors: a larger value fails in libtorch ("cannot be converted to
  // type float without overflow").
  for (const auto& [name, value] : {std::pair<const char*, double>{"lr", absl::GetFlag(FLAGS_lr)},
                                    {"init_scale", absl::GetFlag(FLAGS_init_scale)},
                                    {"clip_norm", absl::GetFlag(FLAGS_clip_norm)},
                                    {"clip_value", absl::GetFlag(FLAGS_clip_value)}}) {
    if (std::fabs(value) > std::numeric_limits<float>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " must be at most ", std::numeric_limits<float>::max(), " (float32), got ", value));
    }
  }
  const double dropout = absl::GetFlag(FLAGS_dropout);
  if (!(dropout >= 0.0 && dropout < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--dropout must be in [0, 1), got ", dropout));
  }
  return absl::OkStatus();
}

absl::StatusOr<model::StackConfig> StackConfigFromFlags() {
  RETURN_IF_ERROR(ValidateCommonFlags());
  model::StackConfig stack;
  ASSIGN_OR_RETURN(stack.cell, model::ParseCellType(absl::GetFlag(FLAGS_cell)));
  stack.num_layers = absl::GetFlag(FLAGS_num_layers);
  stack.hidden_size = absl::GetFlag(FLAGS_hidden_size);
  stack.dropout = absl::GetFlag(FLAGS_dropout);
  stack.bidirectional = absl::GetFlag(FLAGS_bidirectional);
  stack.fused_cpu_lstm = absl::GetFlag(FLAGS_fused_lstm);
  stack.input_size = absl::GetFlag(FLAGS_embedding_size) == 0 ? stack.hidden_size : absl::GetFlag(FLAGS_embedding_size);
  RETURN_IF_ERROR(stack.Validate());
  return stack;
}

std::string KernelText(const model::StackConfig& stack) {
  return stack.fused_cpu_lstm && stack.cell == model::CellType::kLstm ? ", fused LSTM kernel on CPU" : "";
}

std::string InitText(const model::LanguageModelConfig& lm) {
  return lm.torch_init ? "libtorch defaults (embedding N(0, 1), weights U(+-1/sqrt(fan in)))"
                       : absl::StrCat("uniform +-", lm.init_scale);
}

absl::StatusOr<model::LanguageModelConfig> LanguageModelConfigFromFlags(const std::string& what) {
  model::LanguageModelConfig lm;
  ASSIGN_OR_RETURN(lm.stack, StackConfigFromFlags());
  if (lm.stack.bidirectional) {
    return absl::InvalidArgumentError(absl::StrCat("--bidirectional is for classification; ", what,
                                                   " reads left to right"));
  }
  lm.embedding_size = lm.stack.input_size;
  lm.dropout = absl::GetFlag(FLAGS_dropout);
  lm.init_scale = absl::GetFlag(FLAGS_init_scale);
  const std::string init = absl::GetFlag(FLAGS_init);
  if (init != "uniform" && init != "torch") {
    return absl::InvalidArgumentError(absl::StrCat("--init must be uniform or torch, got '", init, "'"));
  }
  lm.torch_init = init == "torch";
  lm.vocab_size = 1;
  return lm;
}

}  // namespace distrnn::app
