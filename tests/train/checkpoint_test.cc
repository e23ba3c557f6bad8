#include "train/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <random>

#include <torch/torch.h>
#include <zlib.h>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace distrnn::train {
namespace {

namespace fs = std::filesystem;

// Nested modules, parameters and a buffer: what the loader walks in real models.
struct TinyNetImpl : torch::nn::Module {
  explicit TinyNetImpl(int64_t hidden = 6)
      : embedding(register_module("embedding", torch::nn::Embedding(11, 4))),
        lstm(register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(4, hidden)))),
        head(register_module("head", torch::nn::Linear(hidden, 11))) {
    register_buffer("scale", torch::ones({2}));
  }
  torch::Tensor forward(const torch::Tensor& tokens) {
    auto out = std::get<0>(lstm->forward(embedding->forward(tokens)));
    return head->forward(out);
  }
  torch::nn::Embedding embedding;
  torch::nn::LSTM lstm;
  torch::nn::Linear head;
};
TORCH_MODULE(TinyNet);

TinyNet MakeNet(uint64_t seed, int64_t hidden = 6) {
  torch::manual_seed(seed);
  return TinyNet(hidden);
}

torch::Tensor Loss(TinyNet& net, uint64_t seed) {
  torch::manual_seed(seed);
  auto tokens = torch::randint(11, {5, 3}, torch::kLong);
  auto targets = torch::randint(11, {5, 3}, torch::kLong);
  return torch::nn::functional::cross_entropy(net->forward(tokens).view({-1, 11}), targets.view({-1}));
}

void Step(TinyNet& net, torch::optim::Optimizer& optimizer, uint64_t seed) {
  optimizer.zero_grad();
  Loss(net, seed).backward();
  optimizer.step();
}

void ExpectSameParameters(TinyNet& a, TinyNet& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

size_t HeaderSize(const std::string& bytes) { return bytes.find('\n', bytes.find('\n') + 1) + 1; }

std::string Serialize(TinyNet& net, nlohmann::json meta = {{"task", "test"}}) {
  CheckpointContents contents;
  contents.meta = std::move(meta);
  contents.model = net.get();
  auto bytes = SerializeCheckpoint(contents);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

bool Contains(const absl::Status& status, const std::string& text) {
  return status.message().find(text) != absl::string_view::npos;
}

TEST(CheckpointTest, RoundTripsModelAdamStateAndTensors) {
  testing::TempDir dir;
  const std::string path = dir.Join("model.pt");
  TinyNet net = MakeNet(1);
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(0.01));
  for (int i = 0; i < 3; ++i) Step(net, adam, 100 + i);
  const torch::Tensor hidden = torch::randn({2, 3, 6});
  const torch::Tensor rng = torch::randint(256, {16}, torch::kUInt8);
  CheckpointContents contents;
  contents.meta = {{"task", "ptb_lm"}, {"epoch", 3}, {"lr", 0.25}};
  contents.model = net.get();
  contents.optimizer = &adam;
  // A view of a larger tensor is stored as itself.
  const torch::Tensor big = torch::randn({100, 6});
  contents.tensors = {{"hidden", hidden}, {"rng.state", rng}, {"row", big[7]}};
  ASSERT_TRUE(SaveCheckpoint(path, contents).ok());

  auto reader = CheckpointReader::FromFile(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->meta(), contents.meta);
  EXPECT_TRUE(reader->has_optimizer());
  EXPECT_EQ(reader->bytes(), ReadAll(path));
  EXPECT_EQ(reader->tensor_names(), (std::vector<std::string>{"hidden", "rng.state", "row"}));
  auto h = reader->Tensor("hidden");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(torch::equal(*h, hidden));
  auto r = reader->Tensor("rng.state");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(*r, rng));
  auto row = reader->Tensor("row");
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_TRUE(torch::equal(*row, big[7]));
  EXPECT_EQ(row->storage().nbytes(), row->nbytes());
  auto absent = reader->Tensor("cell");
  ASSERT_FALSE(absent.ok());
  EXPECT_TRUE(Contains(absent.status(), "no tensor 'cell'")) << absent.status();

  TinyNet loaded = MakeNet(2);
  torch::optim::Adam loaded_adam(loaded->parameters(), torch::optim::AdamOptions(0.5));
  ASSERT_TRUE(reader->LoadModel(*loaded).ok());
  ASSERT_TRUE(reader->LoadOptimizer(loaded_adam).ok());
  ExpectSameParameters(net, loaded);
  EXPECT_TRUE(torch::equal(net->named_buffers()["scale"], loaded->named_buffers()["scale"]));
  // The loaded optimizer continues exactly as the original (moments, step count, lr).
  for (int i = 0; i < 3; ++i) {
    Step(net, adam, 200 + i);
    Step(loaded, loaded_adam, 200 + i);
  }
  ExpectSameParameters(net, loaded);
}

TEST(CheckpointTest, FromBytesReadsWhatSerializeWrites) {
  TinyNet net = MakeNet(1);
  std::string bytes = Serialize(net, {{"vocabulary", {"<unk>", "the", "ünïcödé"}}});
  auto reader = CheckpointReader::FromBytes(bytes, "rank 0's checkpoint");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->meta()["vocabulary"][2], "ünïcödé");
  EXPECT_FALSE(reader->has_optimizer());
  EXPECT_EQ(reader->bytes(), bytes);
  TinyNet loaded = MakeNet(2);
  ASSERT_TRUE(reader->LoadModel(*loaded).ok());
  ExpectSameParameters(net, loaded);
  torch::optim::SGD sgd(loaded->parameters(), torch::optim::SGDOptions(0.1));
  auto no_optimizer = reader->LoadOptimizer(sgd);
  ASSERT_FALSE(no_optimizer.ok());
  EXPECT_TRUE(Contains(no_optimizer, "rank 0's checkpoint holds no optimizer state")) << no_optimizer;
}

TEST(CheckpointTest, HeaderIsTwoTextLinesReadWithoutThePayload) {
  testing::TempDir dir;
  TinyNet net = MakeNet(1);
  const std::string path = dir.WriteFile("model.pt", Serialize(net, {{"task", "char_lm"}, {"epoch", 7}}));
  // `head -2` shows the format and the metadata.
  std::ifstream in(path, std::ios::binary);
  std::string line1, line2;
  std::getline(in, line1);
  std::getline(in, line2);
  EXPECT_EQ(line1, kCheckpointFormat);
  nlohmann::json header = nlohmann::json::parse(line2);
  EXPECT_EQ(header["meta"]["task"], "char_lm");
  EXPECT_EQ(header["payload_bytes"].get<uint64_t>(),
            fs::file_size(path) - line1.size() - line2.size() - 2);

  // ReadCheckpointMeta does not read the payload: a corrupt payload goes unnoticed by it
  // (and is caught by the reader).
  std::string bytes = ReadAll(path);
  bytes[bytes.size() - 10] ^= 0x40;
  dir.WriteFile("model.pt", bytes);
  auto meta = ReadCheckpointMeta(path);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ((*meta)["epoch"], 7);
  EXPECT_FALSE(meta->contains("format"));
  EXPECT_FALSE(CheckpointReader::FromFile(path).ok());
}

TEST(CheckpointTest, AnySingleFlippedBitIsRefused) {
  TinyNet net = MakeNet(1);
  const std::string bytes = Serialize(net, {{"task", "ptb_lm"}, {"vocabulary", {"a", "b"}}, {"lr", 20.0}});
  const size_t header = HeaderSize(bytes);
  ASSERT_GT(bytes.size(), header + 1000);
  auto refused = [&](size_t byte, int bit) {
    std::string flipped = bytes;
    flipped[byte] = static_cast<char>(flipped[byte] ^ (1 << bit));
    return !CheckpointReader::FromBytes(std::move(flipped), "x").ok();
  };
  // Every bit of the header: format line, sizes, checksums, metadata, padding.
  for (size_t byte = 0; byte < header; ++byte) {
    for (int bit = 0; bit < 8; ++bit) ASSERT_TRUE(refused(byte, bit)) << "byte " << byte << " bit " << bit;
  }
  // Bits all over the payload, each refused by the checksum before the archive is parsed.
  for (size_t byte = header; byte < bytes.size(); byte += 7) {
    std::string flipped = bytes;
    flipped[byte] = static_cast<char>(flipped[byte] ^ (1 << (byte % 8)));
    auto reader = CheckpointReader::FromBytes(std::move(flipped), "x");
    ASSERT_FALSE(reader.ok()) << "byte " << byte;
    ASSERT_EQ(reader.status().message(), "x: checksum mismatch: the file is corrupt");
  }
  ASSERT_TRUE(refused(bytes.size() - 1, 7));
}

TEST(CheckpointTest, TruncatedFilesAreRefusedFromTheirHeader) {
  testing::TempDir dir;
  TinyNet net = MakeNet(1);
  const std::string bytes = Serialize(net);
  const size_t line1 = bytes.find('\n') + 1, header = HeaderSize(bytes);
  const std::vector<std::pair<size_t, std::string>> cuts = {
      {5, "is truncated (inside its first line)"},
      {line1 - 1, "is truncated (inside its first line)"},
      {line1, "is truncated (inside its header, line 2)"},
      {line1 + 20, "is truncated (inside its header, line 2)"},
      {header - 1, "is truncated (inside its header, line 2)"},
      {header, "is truncated (its header promises"},
      {header + 100, "is truncated (its header promises"},
      {bytes.size() - 1, "is truncated (its header promises"},
  };
  for (const auto& [size, message] : cuts) {
    const std::string path = dir.WriteFile("cut.pt", bytes.substr(0, size));
    auto meta = ReadCheckpointMeta(path);
    ASSERT_FALSE(meta.ok()) << size;
    EXPECT_EQ(meta.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(meta.status(), path + " " + message)) << size << ": " << meta.status();
    auto reader = CheckpointReader::FromFile(path);
    ASSERT_FALSE(reader.ok());
    EXPECT_TRUE(Contains(reader.status(), message)) << size << ": " << reader.status();
    EXPECT_FALSE(CheckpointReader::FromBytes(bytes.substr(0, size), "x").ok());
    EXPECT_FALSE(LoadCheckpoint(path, *net, nullptr).ok());
  }
  // Bytes appended after the payload.
  const std::string longer = dir.WriteFile("longer.pt", bytes + "x");
  auto meta = ReadCheckpointMeta(longer);
  ASSERT_FALSE(meta.ok());
  EXPECT_TRUE(Contains(meta.status(), "has 1 bytes after its payload")) << meta.status();
}

TEST(CheckpointTest, ForeignAndMissingFilesAreRefused) {
  testing::TempDir dir;
  std::mt19937 random(7);
  std::string noise(5000, '\0');
  for (char& c : noise) c = static_cast<char>(random());
  const std::string zip = dir.Join("tensor.pt");
  torch::save(torch::ones({3}), zip);  // a zip, like distrnn-checkpoint-v1 files
  const std::vector<std::pair<std::string, std::string>> files = {
      {dir.WriteFile("noise.pt", noise), "its first line is not distrnn-checkpoint-v2"},
      {dir.WriteFile("text.pt", "this is not a checkpoint\nat all\n"), "its first line is not"},
      {dir.WriteFile("empty.pt", ""), "it is empty"},
      {zip, "it is a zip archive"},
      {dir.WriteFile("v3.pt", "distrnn-checkpoint-v3\n{}\n"), "its format is distrnn-checkpoint-v3"},
  };
  for (const auto& [path, why] : files) {
    auto meta = ReadCheckpointMeta(path);
    ASSERT_FALSE(meta.ok()) << path;
    EXPECT_EQ(meta.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(meta.status(), path + " is not a distrnn checkpoint (" + why)) << meta.status();
    EXPECT_FALSE(CheckpointReader::FromFile(path).ok()) << path;
  }
  auto missing = ReadCheckpointMeta(dir.Join("missing.pt"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(CheckpointReader::FromFile(dir.Join("missing.pt")).status().code(), absl::StatusCode::kNotFound);
  auto directory = ReadCheckpointMeta(dir.path());
  ASSERT_FALSE(directory.ok());
  EXPECT_TRUE(Contains(directory.status(), "not a regular file")) << directory.status();
}

TEST(CheckpointTest, CorruptHeadersAreRefused) {
  const std::string format = std::string(kCheckpointFormat) + "\n";
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"{not json\n", "corrupt checkpoint header ([json.exception.parse_error"},
      {"[1, 2]\n", "not a JSON object"},
      {"{\"crc32\": 0, \"meta_crc32\": 0, \"meta\": {}}\n", "no 'payload_bytes'"},
      {"{\"payload_bytes\": -1, \"crc32\": 0, \"meta_crc32\": 0, \"meta\": {}}\n", "no 'payload_bytes'"},
      {"{\"payload_bytes\": 0, \"crc32\": 4294967296, \"meta_crc32\": 0, \"meta\": {}}\n", "no 'crc32'"},
      {"{\"payload_bytes\": 0, \"crc32\": 0, \"meta\": {}}\n", "no 'meta_crc32'"},
      {"{\"payload_bytes\": 0, \"crc32\": 0, \"meta_crc32\": 0, \"meta\": 3}\n", "no 'meta' object"},
      {"{\"payload_bytes\": 0, \"crc32\": 0, \"meta_crc32\": 0, \"meta\": {}}\n", "metadata checksum mismatch"},
  };
  for (const auto& [header, message] : headers) {
    auto reader = CheckpointReader::FromBytes(format + header, "x");
    ASSERT_FALSE(reader.ok()) << header;
    EXPECT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(reader.status(), message)) << reader.status();
    EXPECT_EQ(reader.status().message().find('\n'), absl::string_view::npos);
  }
}

TEST(CheckpointTest, HeaderLongerThanTheCapIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.WriteFile("huge.pt", std::string(kCheckpointFormat) + "\n{");
  fs::resize_file(path, kMaxCheckpointHeaderBytes + 100);  // sparse: no disk used
  auto meta = ReadCheckpointMeta(path);
  ASSERT_FALSE(meta.ok());
  EXPECT_TRUE(Contains(meta.status(), "header is longer than 256 MiB")) << meta.status();
}

TEST(CheckpointTest, ChecksumValidPayloadThatIsNoArchiveIsRefused) {
  // A hand-made file whose checksums match but whose payload is not a torch archive.
  TinyNet net = MakeNet(1);
  const std::string good = Serialize(net, nlohmann::json::object());
  nlohmann::json header = nlohmann::json::parse(good.substr(good.find('\n') + 1, HeaderSize(good) - good.find('\n') - 2));
  const std::string payload = "not an archive";
  header["payload_bytes"] = payload.size();
  header["crc32"] = crc32_z(0, reinterpret_cast<const Bytef*>(payload.data()), payload.size());
  auto reader = CheckpointReader::FromBytes(std::string(kCheckpointFormat) + "\n" + header.dump() + "\n" + payload, "x");
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(reader.status(), "x: the payload is not a readable torch archive")) << reader.status();
}

// Note [non-finite checkpoints]: refused when read, before anything is loaded from them.
TEST(CheckpointTest, NonFiniteValuesAreRefusedWhenRead) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    TinyNet net = MakeNet(1);
    {
      torch::NoGradGuard no_grad;
      net->head->weight[3][2].fill_(bad);
    }
    auto reader = CheckpointReader::FromBytes(Serialize(net), "nan.pt");
    ASSERT_FALSE(reader.ok());
    EXPECT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(reader.status().message(), "nan.pt: checkpoint tensor 'head.weight' holds NaN/Inf");
  }
  // Not only the model: an extra tensor (the LM hidden state) too.
  TinyNet net = MakeNet(1);
  CheckpointContents contents;
  contents.model = net.get();
  contents.tensors = {{"state_h", torch::full({2, 3}, std::numeric_limits<float>::infinity())}};
  auto bytes = SerializeCheckpoint(contents);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto reader = CheckpointReader::FromBytes(*bytes, "h.pt");
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().message(), "h.pt: checkpoint tensor 'tensors/state_h' holds NaN/Inf");
}

TEST(CheckpointTest, LoadModelRefusesAnotherArchitectureNamingTheTensor) {
  TinyNet net = MakeNet(1);
  auto reader = CheckpointReader::FromBytes(Serialize(net), "model.pt");
  ASSERT_TRUE(reader.ok()) << reader.status();

  TinyNet wider = MakeNet(2, /*hidden=*/8), untouched = MakeNet(2, 8);
  auto shape = reader->LoadModel(*wider);
  ASSERT_FALSE(shape.ok());
  EXPECT_EQ(shape.message(), "model.pt: checkpoint tensor 'lstm.weight_ih_l0' has shape [24, 4] but the model "
                             "expects [32, 4]");
  ExpectSameParameters(wider, untouched);

  // The model has a tensor the checkpoint lacks.
  struct Extra : TinyNetImpl {
    Extra() { register_parameter("gate", torch::zeros({3})); }
  };
  Extra extra;
  auto missing = reader->LoadModel(extra);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.message(), "model.pt: checkpoint has no tensor 'gate': another model");

  // The checkpoint has a tensor the model lacks.
  auto from_extra = CheckpointReader::FromBytes(
      [&] {
        CheckpointContents contents;
        contents.model = &extra;
        return *SerializeCheckpoint(contents);
      }(),
      "extra.pt");
  ASSERT_TRUE(from_extra.ok()) << from_extra.status();
  auto surplus = from_extra->LoadModel(*net);
  ASSERT_FALSE(surplus.ok());
  EXPECT_EQ(surplus.message(), "extra.pt: checkpoint has 'gate', which the model lacks: another model");

  // A missing submodule.
  struct NoHead : torch::nn::Module {
    NoHead() {
      register_module("embedding", torch::nn::Embedding(11, 4));
      register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(4, 6)));
      register_module("decoder", torch::nn::Linear(6, 11));
      register_buffer("scale", torch::ones({2}));
    }
  };
  NoHead no_head;
  auto no_module = reader->LoadModel(no_head);
  ASSERT_FALSE(no_module.ok());
  EXPECT_EQ(no_module.message(), "model.pt: checkpoint has no module 'decoder': another model");
}

TEST(CheckpointTest, LoadOptimizerRefusesAnotherOptimizer) {
  TinyNet net = MakeNet(1);
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(0.01));
  Step(net, adam, 1);
  CheckpointContents contents;
  contents.model = net.get();
  contents.optimizer = &adam;
  auto reader = CheckpointReader::FromBytes(*SerializeCheckpoint(contents), "adam.pt");
  ASSERT_TRUE(reader.ok()) << reader.status();
  TinyNet other = MakeNet(2);
  const std::vector<torch::Tensor> all = other->parameters();
  std::vector<torch::Tensor> some(all.begin(), all.begin() + 2);
  torch::optim::Adam fewer(some, torch::optim::AdamOptions(0.01));
  auto status = reader->LoadOptimizer(fewer);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(status, "cannot load the optimizer state from adam.pt")) << status;
}

TEST(CheckpointTest, MetadataMustBeAnObjectOfValidUtf8) {
  TinyNet net = MakeNet(1);
  CheckpointContents contents;
  contents.model = net.get();
  contents.meta = {{"vocabulary", {"ok", std::string("bad\xff")}}};
  auto bytes = SerializeCheckpoint(contents);
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bytes.status(), "invalid UTF-8")) << bytes.status();

  contents.meta = nlohmann::json::array({1, 2});
  EXPECT_EQ(SerializeCheckpoint(contents).status().code(), absl::StatusCode::kInvalidArgument);
  contents.meta = nullptr;  // written as {}
  auto empty = SerializeCheckpoint(contents);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(CheckpointReader::FromBytes(*empty, "x")->meta(), nlohmann::json::object());
}

TEST(CheckpointTest, ContentsAreValidated) {
  TinyNet net = MakeNet(1);
  CheckpointContents contents;
  EXPECT_EQ(SerializeCheckpoint(contents).status().message(), "a checkpoint needs a model");
  contents.model = net.get();
  contents.tensors = {{"a/b", torch::ones({1})}};
  EXPECT_FALSE(SerializeCheckpoint(contents).ok());
  contents.tensors = {{"a", torch::ones({1})}, {"a", torch::ones({1})}};
  EXPECT_EQ(SerializeCheckpoint(contents).status().message(), "checkpoint tensor 'a' is given twice");
  contents.tensors = {{"a", torch::Tensor()}};
  EXPECT_FALSE(SerializeCheckpoint(contents).ok());
}

TEST(CheckpointTest, SaveLeavesNoTempFileBehind) {
  testing::TempDir dir;
  TinyNet net = MakeNet(1);
  const std::string path = dir.Join("model.pt");
  ASSERT_TRUE(SaveCheckpoint(path, {{"epoch", 1}}, *net, nullptr).ok());
  ASSERT_TRUE(SaveCheckpoint(path, {{"epoch", 2}}, *net, nullptr).ok());  // replaces
  EXPECT_EQ((*ReadCheckpointMeta(path))["epoch"], 2);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), {}), 1);

  // A failed rename (the target is a directory) removes the temp file.
  const std::string blocked = dir.Join("blocked.pt");
  fs::create_directories(blocked + "/inside");
  auto status = SaveCheckpoint(blocked, {}, *net, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(Contains(status, "cannot rename to " + blocked)) << status;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), {}), 2);
  EXPECT_FALSE(SaveCheckpoint(dir.Join("no/such/dir/model.pt"), {}, *net, nullptr).ok());
}

// The old API, kept for generate / predict / --init_from.
TEST(CheckpointTest, LoadCheckpointLoadsModelAndOptimizer) {
  testing::TempDir dir;
  const std::string path = dir.Join("model.pt");
  TinyNet model = MakeNet(1);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  Step(model, sgd, 1);  // creates momentum buffers
  ASSERT_TRUE(SaveCheckpoint(path, {{"task", "ptb_lm"}}, *model, &sgd).ok());
  EXPECT_EQ((*ReadCheckpointMeta(path))["task"], "ptb_lm");

  TinyNet other = MakeNet(2);
  torch::optim::SGD other_sgd(other->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  ASSERT_TRUE(LoadCheckpoint(path, *other, &other_sgd).ok());
  ExpectSameParameters(model, other);
  auto params = model->parameters(), other_params = other->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    auto& a = static_cast<torch::optim::SGDParamState&>(*sgd.state().at(params[i].unsafeGetTensorImpl()));
    auto& b = static_cast<torch::optim::SGDParamState&>(*other_sgd.state().at(other_params[i].unsafeGetTensorImpl()));
    EXPECT_TRUE(torch::equal(a.momentum_buffer(), b.momentum_buffer())) << "parameter " << i;
  }
  // Asking for optimizer state a checkpoint lacks is an error, not a silent fresh start.
  ASSERT_TRUE(SaveCheckpoint(path, {}, *model, nullptr).ok());
  EXPECT_TRUE(LoadCheckpoint(path, *other, nullptr).ok());
  EXPECT_FALSE(LoadCheckpoint(path, *other, &other_sgd).ok());
}

TEST(CheckpointTest, WriteFileAtomicallyReplacesContents) {
  testing::TempDir dir;
  const std::string path = dir.WriteFile("latest", "old");
  ASSERT_TRUE(WriteFileAtomically(path, "new").ok());
  EXPECT_EQ(ReadAll(path), "new");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), {}), 1);
}

}  // namespace
}  // namespace distrnn::train
