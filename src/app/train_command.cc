#include "app/train_command.h"

#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "app/config_table.h"
#include "app/exit_codes.h"
#include "comm/communicator_factory.h"
#include "common/logging.h"
#include "common/runtime.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/data_dir.h"
#include "data/word_corpus.h"
#include "model/language_model.h"
#include "train/lm_trainer.h"

namespace distrnn::app {
namespace {

ConfigRows DescribeRun(const TrainOptions& o, const comm::Communicator& comm, const data::WordCorpus& corpus,
                       int64_t parameters, const std::string& memory) {
  const auto& lm = o.lm;
  const auto& t = o.trainer;
  return {
      {"task", o.run.task},
      {"data", o.run.data_dir},
      {"train/valid/test tokens", absl::StrCat(corpus.train.size(), " / ", corpus.valid.size(), " / ", corpus.test.size())},
      {"vocabulary", absl::StrCat(corpus.vocab.size())},
      {"model", absl::StrCat(model::CellTypeName(lm.stack.cell), " ", lm.stack.num_layers, "x", lm.stack.hidden_size,
                             ", embedding ", lm.embedding_size, lm.tie_weights ? ", tied" : "")},
      {"parameters", absl::StrCat(parameters)},
      {"dropout / init scale", absl::StrCat(lm.dropout, " / ", lm.init_scale)},
      {"global batch / bptt", absl::StrCat(t.batch_size, " / ", t.num_steps)},
      {"lr / schedule", absl::StrCat(t.lr.base_lr, ", ", t.lr.kind == train::LrScheduleKind::kZaremba ? "zaremba" : "plateau",
                                     " decay ", t.lr.decay, " after epoch ", t.lr.decay_start)},
      {"epochs / max steps", absl::StrCat(t.max_epochs, " / ", t.max_steps == 0 ? "none" : absl::StrCat(t.max_steps))},
      {"clip norm / loss", absl::StrCat(t.clip_norm, " / ", train::LossReductionName(t.loss_reduction))},
      {"comm / world size", absl::StrCat(comm.backend(), " / ", comm.world_size())},
      {"cpu", common::DescribeComputeSettings()},
      {"memory", memory},
      {"seed", absl::StrCat(o.run.seed)},
      {"run dir", t.run_dir.empty() ? "(none)" : t.run_dir},
  };
}

absl::Status TrainWith(comm::Communicator& comm, TrainOptions options, const std::string& memory) {
  common::SetComputeThreads(options.run.threads > 0 ? options.run.threads : comm::DefaultThreadsPerRank(comm));

  ASSIGN_OR_RETURN(options.run.data_dir, data::ResolveDataDir(options.run.data_dir));
  if (options.trainer.batch_size % comm.world_size() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--batch_size ", options.trainer.batch_size,
                                                   " (the global batch) is not divisible by the world size ",
                                                   comm.world_size()));
  }
  ASSIGN_OR_RETURN(data::WordCorpus corpus, data::LoadPtbCorpus(options.run.data_dir + "/ptb"));
  options.lm.vocab_size = corpus.vocab.size();
  RETURN_IF_ERROR(options.lm.Validate());

  model::LanguageModel model{nullptr};
  RETURN_IF_ERROR(common::GuardTorch("cannot build the model", [&] {
    torch::manual_seed(options.run.seed);
    model = model::LanguageModel(options.lm);
    return absl::OkStatus();
  }));
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  common::Log0(FormatConfigTable(DescribeRun(options, comm, corpus, parameters, memory)));

  nlohmann::json meta = {
      {"task", options.run.task},
      {"cell", model::CellTypeName(options.lm.stack.cell)},
      {"num_layers", options.lm.stack.num_layers},
      {"hidden_size", options.lm.stack.hidden_size},
      {"embedding_size", options.lm.embedding_size},
      {"tie_weights", options.lm.tie_weights},
      {"vocabulary", corpus.vocab.tokens()},
  };
  common::LogLine("comm", absl::StrCat("backend ", comm.backend(), ", local rank ", comm.local_rank(), "/",
                                       comm.local_size(), ", ", common::DescribeComputeSettings()));
  train::LmTrainer trainer(comm, model, options.trainer, {&corpus.train, &corpus.valid, &corpus.test}, meta);
  ASSIGN_OR_RETURN(train::LmResult result, trainer.Run());
  common::Log0(absl::StrFormat("| done | epochs %d | steps %d | best valid ppl %.2f | test ppl %.2f | peak memory %.0f MiB |",
                               result.epochs, result.steps, result.best_valid_ppl, result.test_ppl,
                               common::PeakRssMiB()));
  return absl::OkStatus();
}

}  // namespace

absl::Status RunTrain(const TrainOptions& options) {
  const std::string memory = common::KeepFreedMemory();
  ASSIGN_OR_RETURN(comm::CommKind kind, comm::ParseCommKind(options.run.comm));
  comm::MpiOptions mpi_options;
  mpi_options.collective_timeout_s = options.run.collective_timeout_s;
  ASSIGN_OR_RETURN(std::unique_ptr<comm::Communicator> comm, comm::CreateCommunicator(kind, mpi_options));
  common::SetLogRank(comm->rank(), comm->world_size());
  absl::Status status = TrainWith(*comm, options, memory);
  if (!status.ok() && comm->world_size() > 1) {
    // Peers may be waiting in a collective: end the whole job, naming this rank.
    common::LogLine("error", absl::StrCat("distrnn: error: ", status.message()));
    comm->Abort(ExitCodeFor(status));
  }
  return status;
}

}  // namespace distrnn::app
