#include "app/imdb_task.h"

#include <cmath>
#include <optional>
#include <vector>

#include <torch/utils.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "app/model_budget.h"
#include "app/task_registry.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/timer.h"
#include "common/torch_status.h"
#include "data/classification_batcher.h"
#include "data/data_dir.h"
#include "data/glove.h"
#include "data/imdb.h"
#include "model/classifier.h"
#include "train/checkpoint.h"
#include "train/classification_train_task.h"

ABSL_FLAG(int32_t, vocab_size, 25000, "imdb: the most frequent train words kept (plus <pad> and <unk>).");
ABSL_FLAG(int32_t, max_len, 256, "imdb: reviews are cut to their first max_len tokens (0: no limit).");
ABSL_FLAG(std::string, glove_file, "", "imdb: optional pretrained word vectors (GloVe text format, may be .gz).");
ABSL_FLAG(bool, bucket_by_length, true, "imdb: batch reviews of similar length together (less padding).");
ABSL_FLAG(int32_t, bucket_batches, 50, "imdb: length buckets are sorted chunks of this many global batches.");
ABSL_FLAG(std::string, imdb_dir, "", "imdb: directory of the data (default <data_dir>/imdb).");
ABSL_DECLARE_FLAG(double, valid_fraction);  // defined in lm_task.cc

namespace distrnn::app {

nlohmann::json ImdbCheckpointMeta(const model::ClassifierConfig& config, const data::Vocabulary& vocab,
                                  int64_t max_len) {
  return {
      {"task", "imdb"},
      {"cell", model::CellTypeName(config.stack.cell)},
      {"num_layers", config.stack.num_layers},
      {"hidden_size", config.stack.hidden_size},
      {"bidirectional", config.stack.bidirectional},
      {"embedding_size", config.embedding_size},
      {"dropout", config.dropout},  // the stack's module layout depends on it
      {"num_classes", config.num_classes},
      {"padding_idx", config.padding_idx},
      {"max_len", max_len},
      {"vocabulary", vocab.tokens()},
  };
}

absl::StatusOr<ImdbCheckpointInfo> ReadImdbCheckpointInfo(const std::string& path) {
  ASSIGN_OR_RETURN(nlohmann::json meta, train::ReadCheckpointMeta(path));
  const std::string task = meta.contains("task") && meta["task"].is_string() ? meta["task"].get<std::string>() : "";
  if (task != "imdb") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is a checkpoint of task '", task, "', not of the imdb classifier (--task=imdb)"));
  }
  ImdbCheckpointInfo info;
  try {
    model::ClassifierConfig& c = info.config;
    ASSIGN_OR_RETURN(c.stack.cell, model::ParseCellType(meta.at("cell").get<std::string>()));
    c.stack.num_layers = meta.at("num_layers").get<int64_t>();
    c.stack.hidden_size = meta.at("hidden_size").get<int64_t>();
    c.stack.bidirectional = meta.at("bidirectional").get<bool>();
    c.embedding_size = meta.at("embedding_size").get<int64_t>();
    c.dropout = meta.value("dropout", 0.0);
    c.stack.dropout = c.dropout;
    c.stack.input_size = c.embedding_size;
    c.num_classes = meta.at("num_classes").get<int64_t>();
    c.padding_idx = meta.at("padding_idx").get<int64_t>();
    info.max_len = meta.at("max_len").get<int64_t>();
    info.vocab = data::Vocabulary(meta.at("vocabulary").get<std::vector<std::string>>());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": incomplete checkpoint metadata (", e.what(), ")"));
  }
  info.config.vocab_size = info.vocab.size();
  if (absl::Status s = info.config.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": bad classifier config in metadata: ", s.message()));
  }
  RETURN_IF_ERROR(CheckModelFitsInMemory(info.config, /*copies=*/1, absl::StrCat("the model of ", path)));
  return info;
}

namespace {

struct ImdbOptions {
  RunOptions run;
  model::ClassifierConfig model;
  train::ClassificationTaskConfig trainer;
  int64_t vocab_size = 25000;
  int64_t max_len = 256;
  double valid_fraction = 0.1;
  std::string glove_file;
  std::string imdb_dir;
};

absl::StatusOr<ImdbOptions> ImdbOptionsFromFlags(const RunOptions& run) {
  ImdbOptions o;
  o.run = run;
  ASSIGN_OR_RETURN(o.model.stack, StackConfigFromFlags());
  o.model.embedding_size = o.model.stack.input_size;
  o.model.dropout = absl::GetFlag(FLAGS_dropout);
  o.model.num_classes = 1;
  o.model.padding_idx = data::kPadId;
  o.model.vocab_size = 2;  // until the vocabulary is built; validated again then
  RETURN_IF_ERROR(o.model.Validate());

  train::ClassificationTaskConfig& t = o.trainer;
  t.batch_size = absl::GetFlag(FLAGS_batch_size);
  t.eval_batch_size = absl::GetFlag(FLAGS_eval_batch_size);
  t.bucket_by_length = absl::GetFlag(FLAGS_bucket_by_length);
  t.bucket_batches = absl::GetFlag(FLAGS_bucket_batches);
  t.seed = run.seed;
  if (t.bucket_batches < 1) return absl::InvalidArgumentError("--bucket_batches must be positive");

  o.vocab_size = absl::GetFlag(FLAGS_vocab_size);
  o.max_len = absl::GetFlag(FLAGS_max_len);
  o.valid_fraction = absl::GetFlag(FLAGS_valid_fraction);
  o.glove_file = absl::GetFlag(FLAGS_glove_file);
  o.imdb_dir = absl::GetFlag(FLAGS_imdb_dir);
  if (o.vocab_size < 1) return absl::InvalidArgumentError(absl::StrCat("--vocab_size must be positive, got ", o.vocab_size));
  if (o.max_len < 0) return absl::InvalidArgumentError(absl::StrCat("--max_len must be >= 0, got ", o.max_len));
  if (!(o.valid_fraction > 0.0 && o.valid_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--valid_fraction must be in (0, 1) for imdb (model selection), got ", o.valid_fraction));
  }
  return o;
}

// Reviews as id sequences; an empty encoding (a review of markup only) becomes one <unk>,
// as in predict, so every sequence has a length >= 1.
data::ClassificationDataset Encode(const std::vector<std::vector<std::string>>& tokens,
                                   const std::vector<int64_t>& labels, const data::Vocabulary& vocab,
                                   int64_t max_len) {
  data::ClassificationDataset d;
  d.sequences.reserve(tokens.size());
  for (const auto& t : tokens) {
    d.sequences.push_back(data::EncodeTokens(t, vocab, max_len));
    if (d.sequences.back().empty()) d.sequences.back().push_back(data::kImdbUnkId);
  }
  d.labels = labels;
  return d;
}

struct ImdbData {
  std::string source;
  data::Vocabulary vocab;
  data::ClassificationDataset train, valid, test;  // valid and test on rank 0 only
  int64_t num_valid = 0, num_test = 0;
  double mean_train_len = 0.0, truncated_fraction = 0.0;
};

// Reads both splits, tokenizes each review once, splits train into train/valid (seeded),
// builds the vocabulary from the train part only and encodes.
absl::StatusOr<ImdbData> LoadImdbData(const ImdbOptions& o, bool root) {
  ImdbData d;
  if (o.imdb_dir.empty()) {
    ASSIGN_OR_RETURN(std::string dir, data::ResolveDataDir(o.run.data_dir));
    d.source = dir + "/imdb";
  } else {
    d.source = o.imdb_dir;
  }
  common::Stopwatch clock;
  ASSIGN_OR_RETURN(data::ImdbSplits splits, data::LoadImdb(d.source));
  ASSIGN_OR_RETURN(data::IndexSplit split,
                   data::SplitIndices(static_cast<int64_t>(splits.train.size()), o.valid_fraction, o.run.seed));
  auto tokenize = [&](const std::vector<data::LabeledText>& all, const std::vector<int64_t>& indices,
                      std::vector<std::vector<std::string>>& tokens, std::vector<int64_t>& labels) {
    for (int64_t i : indices) {
      tokens.push_back(data::TokenizeReview(all[i].text));
      labels.push_back(all[i].label);
    }
  };
  std::vector<std::vector<std::string>> train_tokens, valid_tokens, test_tokens;
  std::vector<int64_t> train_labels, valid_labels, test_labels;
  tokenize(splits.train, split.train, train_tokens, train_labels);
  ASSIGN_OR_RETURN(d.vocab, data::BuildImdbVocabulary(train_tokens, o.vocab_size));
  d.train = Encode(train_tokens, train_labels, d.vocab, o.max_len);
  d.num_valid = static_cast<int64_t>(split.valid.size());
  d.num_test = static_cast<int64_t>(splits.test.size());
  if (root) {  // rank 0 alone evaluates
    tokenize(splits.train, split.valid, valid_tokens, valid_labels);
    d.valid = Encode(valid_tokens, valid_labels, d.vocab, o.max_len);
    std::vector<int64_t> all_test(splits.test.size());
    for (size_t i = 0; i < all_test.size(); ++i) all_test[i] = static_cast<int64_t>(i);
    tokenize(splits.test, all_test, test_tokens, test_labels);
    d.test = Encode(test_tokens, test_labels, d.vocab, o.max_len);
  }
  int64_t total = 0, truncated = 0;
  for (size_t i = 0; i < train_tokens.size(); ++i) {
    total += static_cast<int64_t>(d.train.sequences[i].size());
    if (o.max_len > 0 && static_cast<int64_t>(train_tokens[i].size()) > o.max_len) ++truncated;
  }
  d.mean_train_len = static_cast<double>(total) / static_cast<double>(std::max<size_t>(train_tokens.size(), 1));
  d.truncated_fraction = static_cast<double>(truncated) / static_cast<double>(std::max<size_t>(train_tokens.size(), 1));
  common::Log0(absl::StrFormat("[data] read and tokenized %s in %.1fs", d.source, clock.ElapsedMs() / 1000.0));
  return d;
}

void AddRows(const ImdbOptions& o, const ImdbData& d, int64_t parameters, const std::string& init, ConfigRows& rows) {
  const auto& m = o.model;
  const auto& t = o.trainer;
  rows.push_back({"data", d.source});
  rows.push_back({"train/valid/test reviews", absl::StrCat(d.train.labels.size(), " / ", d.num_valid, " / ", d.num_test)});
  rows.push_back({"vocabulary", absl::StrCat(d.vocab.size(), " (top ", o.vocab_size, " train words + <pad>, <unk>)")});
  rows.push_back({"max_len", absl::StrFormat("%d (mean train length %.1f, %.1f%% truncated)", o.max_len,
                                             d.mean_train_len, 100.0 * d.truncated_fraction)});
  rows.push_back({"model", absl::StrCat(model::CellTypeName(m.stack.cell), " ", m.stack.num_layers, "x",
                                        m.stack.hidden_size, m.stack.bidirectional ? " bidirectional" : "",
                                        ", embedding ", m.embedding_size, ", ", parameters, " parameters",
                                        KernelText(m.stack))});
  rows.push_back({"init / dropout", absl::StrCat(init, " / ", m.dropout)});
  rows.push_back({"batching", absl::StrCat(t.bucket_by_length ? absl::StrCat("length buckets of ", t.bucket_batches,
                                                                             " batches") : "random",
                                           ", eval batch ", t.eval_batch_size, ", valid fraction ", o.valid_fraction)});
}

// Rank 0 copies the GloVe vectors found into the embedding (rank 0's parameters are
// broadcast when training starts). Returns the init description for the config table.
absl::StatusOr<std::string> MaybeLoadGlove(const ImdbOptions& o, const comm::Communicator& comm,
                                           const data::Vocabulary& vocab, model::Classifier& model) {
  if (o.glove_file.empty()) return std::string("libtorch defaults");
  if (!comm.is_root()) return absl::StrCat("GloVe ", o.glove_file);
  ASSIGN_OR_RETURN(data::PretrainedEmbeddings glove,
                   data::LoadGloveEmbeddings(o.glove_file, vocab, o.model.embedding_size));
  std::vector<bool> found(glove.found.begin(), glove.found.end());
  found[data::kPadId] = false;  // the padding row stays zero
  int64_t copied = 0;
  RETURN_IF_ERROR(common::GuardTorch("cannot load the pretrained vectors", [&] {
    copied = model->LoadPretrained(glove.values, found);
    return absl::OkStatus();
  }));
  const std::string summary = absl::StrFormat("GloVe %s: %d of %d vocabulary words found (%.1f%%)", o.glove_file,
                                              copied, vocab.size(), 100.0 * copied / vocab.size());
  common::Log0(absl::StrCat("[data] ", summary));
  return summary;
}

class PreparedImdbTask : public PreparedTask {
 public:
  explicit PreparedImdbTask(ImdbOptions options) : options_(std::move(options)) {}

  absl::StatusOr<std::unique_ptr<train::TrainTask>> Build(comm::Communicator& comm, const train::Shard& shard,
                                                         ConfigRows& rows) override {
    ASSIGN_OR_RETURN(data_, LoadImdbData(options_, comm.is_root()));
    options_.model.vocab_size = data_.vocab.size();
    RETURN_IF_ERROR(options_.model.Validate());
    RETURN_IF_ERROR(CheckModelFitsInMemory(options_.model, /*copies=*/2, "the model"));  // Note [model size check]
    model::Classifier model{nullptr};
    RETURN_IF_ERROR(common::GuardTorch("cannot build the model", [&] {
      torch::manual_seed(options_.run.seed);
      model = model::Classifier(options_.model);
      return absl::OkStatus();
    }));
    ASSIGN_OR_RETURN(std::string init, MaybeLoadGlove(options_, comm, data_.vocab, model));
    int64_t parameters = 0;
    for (const auto& p : model->parameters()) parameters += p.numel();
    AddRows(options_, data_, parameters, init, rows);
    const bool root = comm.is_root();
    train::ClassificationSplits splits{&data_.train, root ? &data_.valid : nullptr, root ? &data_.test : nullptr};
    ASSIGN_OR_RETURN(auto built, train::ClassificationTrainTask::Create(
                                     model, options_.trainer, splits, shard,
                                     ImdbCheckpointMeta(options_.model, data_.vocab, options_.max_len)));
    return std::unique_ptr<train::TrainTask>(std::move(built));
  }

  std::string Summary(const train::TrainResult& r) const override {
    const double best = r.best_valid.count("valid_accuracy") ? r.best_valid.at("valid_accuracy") : 0.0;
    std::string text = absl::StrFormat("best valid acc %.2f%% (epoch %d)", 100.0 * best, r.best_epoch);
    if (r.test.count("test_accuracy")) absl::StrAppendFormat(&text, " | test acc %.2f%%", 100.0 * r.test.at("test_accuracy"));
    absl::StrAppendFormat(&text, " | last epoch %.1fs, %.0f ex/s", r.last_epoch_seconds, r.units_per_s);
    return text;
  }

 private:
  ImdbOptions options_;
  ImdbData data_;  // owned here: the task keeps pointers into it
};

}  // namespace

absl::StatusOr<std::unique_ptr<PreparedTask>> PrepareImdbTask(const RunOptions& run) {
  ASSIGN_OR_RETURN(ImdbOptions options, ImdbOptionsFromFlags(run));
  return std::unique_ptr<PreparedTask>(std::make_unique<PreparedImdbTask>(std::move(options)));
}

}  // namespace distrnn::app
