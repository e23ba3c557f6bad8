#include "app/train_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

ABSL_FLAG(std::string, task, "ptb_lm", "Task: ptb_lm (word LM on Penn Treebank).");
ABSL_FLAG(std::string, data_dir, "", "Data sets directory (else $DISTRNN_DATA, ../shared/data, ./data).");
ABSL_FLAG(std::string, comm, "auto", "Communicator: auto (mpi under an MPI launcher), local or mpi.");
ABSL_FLAG(int32_t, threads, 0, "Intra-op CPU threads per rank (0: allowed cores / ranks on this node).");
ABSL_FLAG(uint64_t, seed, 1234, "Random seed (model initialisation, dropout).");
ABSL_FLAG(std::string, run_dir, "runs/latest", "Directory for metrics.jsonl and checkpoints ('' for none).");

ABSL_FLAG(std::string, cell, "lstm", "Recurrent cell: rnn_tanh, rnn_relu, lstm, gru, mlstm or mgru.");
ABSL_FLAG(int32_t, num_layers, 2, "Recurrent layers.");
ABSL_FLAG(int32_t, hidden_size, 200, "Hidden units per layer.");
ABSL_FLAG(int32_t, embedding_size, 0, "Embedding size (0: same as --hidden_size).");
ABSL_FLAG(double, dropout, 0.0, "Dropout on non-recurrent connections (Zaremba).");
ABSL_FLAG(double, init_scale, 0.1, "Parameters are initialised uniformly in [-init_scale, init_scale].");
ABSL_FLAG(bool, tie_weights, false, "Share the embedding and decoder matrices (needs embedding == hidden).");

ABSL_FLAG(int32_t, batch_size, 20, "Global batch size (columns), split evenly over ranks.");
ABSL_FLAG(int32_t, num_steps, 20, "Truncated-BPTT window length.");
ABSL_FLAG(int32_t, eval_batch_size, 10, "Columns used for validation and test.");
ABSL_FLAG(int32_t, max_epochs, 13, "Epochs to train (Zaremba's max_max_epoch).");
ABSL_FLAG(int64_t, max_steps, 0, "Stop after this many optimizer steps in total (0: no limit).");
ABSL_FLAG(double, lr, 1.0, "Learning rate (SGD).");
ABSL_FLAG(double, lr_decay, 0.5, "Learning-rate decay factor.");
ABSL_FLAG(int32_t, decay_start_epoch, 4, "zaremba schedule: epochs at the initial lr (Zaremba's max_epoch).");
ABSL_FLAG(std::string, lr_schedule, "zaremba", "zaremba (fixed decay after --decay_start_epoch) or plateau.");
ABSL_FLAG(double, clip_norm, 5.0, "Clip gradients to this global L2 norm (0: no clipping).");
ABSL_FLAG(std::string, loss_reduction, "sum_steps_mean_batch",
          "sum_steps_mean_batch (Zaremba: sum over steps, mean over the global batch) or mean_tokens.");
ABSL_FLAG(int32_t, log_every, 0, "Steps between progress lines (0: ten per epoch).");

ABSL_FLAG(double, bucket_mb, 25.0, "Gradient all-reduce bucket size in MiB.");
ABSL_FLAG(int64_t, check_replicas_every, 0, "Every K steps all ranks compare a parameter checksum (0: never).");
ABSL_FLAG(double, collective_timeout_s, 300.0,
          "MPI: end the job when a collective waits longer than this for a stalled peer (0: never).");
ABSL_FLAG(int32_t, fault_rank, -1, "Testing aid: the rank that exits abruptly at --fault_step.");
ABSL_FLAG(int64_t, fault_step, 0, "Testing aid: step before which --fault_rank exits abruptly (0: off).");

namespace distrnn::app {

absl::StatusOr<TrainOptions> TrainOptionsFromFlags() {
  TrainOptions options;
  options.run.task = absl::GetFlag(FLAGS_task);
  if (options.run.task != "ptb_lm") {
    return absl::InvalidArgumentError(absl::StrCat("unknown --task '", options.run.task, "' (expected ptb_lm)"));
  }
  options.run.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.run.comm = absl::GetFlag(FLAGS_comm);
  options.run.threads = absl::GetFlag(FLAGS_threads);
  if (options.run.threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  options.run.seed = absl::GetFlag(FLAGS_seed);
  options.run.collective_timeout_s = absl::GetFlag(FLAGS_collective_timeout_s);
  if (options.run.collective_timeout_s < 0) return absl::InvalidArgumentError("--collective_timeout_s must be >= 0");

  if (absl::GetFlag(FLAGS_hidden_size) < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--hidden_size must be positive, got ", absl::GetFlag(FLAGS_hidden_size)));
  }
  model::LanguageModelConfig& lm = options.lm;
  ASSIGN_OR_RETURN(lm.stack.cell, model::ParseCellType(absl::GetFlag(FLAGS_cell)));
  lm.stack.num_layers = absl::GetFlag(FLAGS_num_layers);
  lm.stack.hidden_size = absl::GetFlag(FLAGS_hidden_size);
  lm.stack.dropout = absl::GetFlag(FLAGS_dropout);
  lm.embedding_size = absl::GetFlag(FLAGS_embedding_size) == 0 ? lm.stack.hidden_size
                                                                : absl::GetFlag(FLAGS_embedding_size);
  lm.stack.input_size = lm.embedding_size;
  lm.dropout = absl::GetFlag(FLAGS_dropout);
  lm.init_scale = absl::GetFlag(FLAGS_init_scale);
  lm.tie_weights = absl::GetFlag(FLAGS_tie_weights);
  lm.vocab_size = 1;  // placeholder until the data is read; validated again then
  if (absl::GetFlag(FLAGS_embedding_size) < 0) return absl::InvalidArgumentError("--embedding_size must be >= 0");
  RETURN_IF_ERROR(lm.Validate());

  train::LmTrainConfig& t = options.trainer;
  t.batch_size = absl::GetFlag(FLAGS_batch_size);
  t.num_steps = absl::GetFlag(FLAGS_num_steps);
  t.eval_batch_size = absl::GetFlag(FLAGS_eval_batch_size);
  t.max_epochs = absl::GetFlag(FLAGS_max_epochs);
  t.max_steps = absl::GetFlag(FLAGS_max_steps);
  ASSIGN_OR_RETURN(t.lr.kind, train::ParseLrSchedule(absl::GetFlag(FLAGS_lr_schedule)));
  t.lr.base_lr = absl::GetFlag(FLAGS_lr);
  t.lr.decay = absl::GetFlag(FLAGS_lr_decay);
  t.lr.decay_start = absl::GetFlag(FLAGS_decay_start_epoch);
  t.clip_norm = absl::GetFlag(FLAGS_clip_norm);
  ASSIGN_OR_RETURN(t.loss_reduction, train::ParseLossReduction(absl::GetFlag(FLAGS_loss_reduction)));
  t.log_every = absl::GetFlag(FLAGS_log_every);
  t.run_dir = absl::GetFlag(FLAGS_run_dir);
  t.bucket_bytes = static_cast<int64_t>(absl::GetFlag(FLAGS_bucket_mb) * (1 << 20));
  t.check_replicas_every = absl::GetFlag(FLAGS_check_replicas_every);
  t.fault_rank = absl::GetFlag(FLAGS_fault_rank);
  t.fault_step = absl::GetFlag(FLAGS_fault_step);
  RETURN_IF_ERROR(t.Validate());
  return options;
}

}  // namespace distrnn::app
