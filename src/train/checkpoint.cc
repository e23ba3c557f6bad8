#include "train/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace distrnn::train {
namespace {

using nlohmann::json;

const std::string& FormatLine() {
  static const std::string line = absl::StrCat(kCheckpointFormat, "\n");
  return line;
}

uint32_t Crc32(const char* data, size_t size) {
  return static_cast<uint32_t>(crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(data), size));
}

absl::Status ErrnoStatus(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// ---------------------------------------------------------------------------------------
// Files.

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

absl::Status WriteAll(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("cannot write", path);
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Reads exactly `size` bytes at `offset` into `out`; a short read means the file shrank.
absl::Status ReadAt(int fd, uint64_t offset, char* out, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pread(fd, out, std::min<size_t>(size, size_t{1} << 30), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("cannot read", path);
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat(path, " shrank while being read"));
    out += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FsyncDirectoryOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus("cannot open directory", dir);
  if (::fsync(fd.get()) != 0) return ErrnoStatus("cannot fsync directory", dir);
  return absl::OkStatus();
}

// Unique per process and call, so concurrent writers of one path never share a temp file.
std::string TempPathFor(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(path, ".tmp.", ::getpid(), ".", counter.fetch_add(1));
}

struct OpenedFile {
  int fd;
  uint64_t size;
};

absl::StatusOr<OpenedFile> OpenForReading(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no such checkpoint: ", path));
    return ErrnoStatus("cannot open checkpoint", path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status status = ErrnoStatus("cannot stat", path);
    ::close(fd);
    return status;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file, not a checkpoint"));
  }
  return OpenedFile{fd, static_cast<uint64_t>(st.st_size)};
}

// ---------------------------------------------------------------------------------------
// The header: line 1 (format) and line 2 (JSON).

absl::Status NotACheckpoint(const std::string& name, absl::string_view data) {
  std::string why = absl::StrCat("its first line is not ", kCheckpointFormat);
  if (data.empty()) {
    why = "it is empty";
  } else if (absl::StartsWith(data, "PK\x03\x04")) {
    why = "it is a zip archive: a plain torch file or a distrnn-checkpoint-v1 checkpoint?";
  } else if (absl::StartsWith(data, "distrnn-checkpoint-")) {
    absl::string_view first = data.substr(0, std::min(data.find('\n'), size_t{40}));
    why = absl::StrCat("its format is ", first, " and this build reads ", kCheckpointFormat);
  }
  return absl::InvalidArgumentError(absl::StrCat(name, " is not a distrnn checkpoint (", why, ")"));
}

// `data` is the start of the file: its first FormatLine().size() bytes, or all of it.
absl::Status CheckFormatLine(absl::string_view data, const std::string& name) {
  const std::string& format = FormatLine();
  if (absl::StartsWith(data, format)) return absl::OkStatus();
  if (!data.empty() && data.size() < format.size() && absl::StartsWith(format, data)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is truncated (inside its first line)"));
  }
  return NotACheckpoint(name, data);
}

struct Header {
  json meta;
  uint64_t payload_bytes = 0;
  uint32_t crc32 = 0;
  size_t size = 0;  // bytes of lines 1 and 2, i.e. the payload's offset
};

absl::StatusOr<uint64_t> UnsignedField(const json& header, const char* key, uint64_t max, const std::string& name) {
  auto it = header.find(key);
  if (it == header.end() || !it->is_number_unsigned() || it->get<uint64_t>() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": corrupt checkpoint header (no '", key, "' that is an integer in [0, ", max, "])"));
  }
  return it->get<uint64_t>();
}

// `data` is the start of the file, at least through the end of line 2, or all of it
// (`whole_file`), or more than kMaxCheckpointHeaderBytes past line 1.
absl::StatusOr<Header> ParseHeader(absl::string_view data, bool whole_file, const std::string& name) {
  RETURN_IF_ERROR(CheckFormatLine(data, name));
  const size_t begin = FormatLine().size();
  const size_t end = data.find('\n', begin);
  const size_t length = (end == absl::string_view::npos ? data.size() : end) - begin;
  if (length > static_cast<uint64_t>(kMaxCheckpointHeaderBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": checkpoint header is longer than ",
                                                   kMaxCheckpointHeaderBytes >> 20, " MiB: the file is corrupt"));
  }
  if (end == absl::string_view::npos) {
    TORCH_INTERNAL_ASSERT(whole_file, "ParseHeader needs the whole header line");
    return absl::InvalidArgumentError(absl::StrCat(name, " is truncated (inside its header, line 2)"));
  }
  const absl::string_view text = data.substr(begin, length);
  if (text.find('\0') != absl::string_view::npos) {  // nlohmann would stop parsing there
    return absl::InvalidArgumentError(absl::StrCat(name, ": corrupt checkpoint header (a NUL byte)"));
  }
  json line;
  try {
    line = json::parse(text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": corrupt checkpoint header (", e.what(), ")"));
  }
  if (!line.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": corrupt checkpoint header (not a JSON object)"));
  }
  Header header;
  header.size = end + 1;
  ASSIGN_OR_RETURN(header.payload_bytes,
                   UnsignedField(line, "payload_bytes", std::numeric_limits<int64_t>::max(), name));
  ASSIGN_OR_RETURN(uint64_t crc, UnsignedField(line, "crc32", 0xffffffffu, name));
  ASSIGN_OR_RETURN(uint64_t meta_crc, UnsignedField(line, "meta_crc32", 0xffffffffu, name));
  header.crc32 = static_cast<uint32_t>(crc);
  auto meta = line.find("meta");
  if (meta == line.end() || !meta->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": corrupt checkpoint header (no 'meta' object)"));
  }
  // A parsed document dumps as it was written (sorted keys, shortest round-trip numbers).
  const std::string meta_text = meta->dump();
  if (Crc32(meta_text.data(), meta_text.size()) != meta_crc) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": metadata checksum mismatch: the file is corrupt"));
  }
  header.meta = std::move(*meta);
  return header;
}

// The payload must be exactly what the header promises.
absl::Status CheckPayloadSize(const Header& header, uint64_t file_size, const std::string& name) {
  const uint64_t have = file_size - header.size;
  if (have < header.payload_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is truncated (its header promises ", header.payload_bytes,
                                                   " payload bytes, the file holds ", have, ")"));
  }
  if (have > header.payload_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(name, " has ", have - header.payload_bytes,
                                                   " bytes after its payload: the file is corrupt"));
  }
  return absl::OkStatus();
}

// Reads the start of an open file until the header can be parsed; returns the header and
// leaves the bytes read in `start`. A foreign file is refused after its first chunk.
absl::StatusOr<Header> ReadHeader(const OpenedFile& file, const std::string& path, std::string& start) {
  const uint64_t limit =
      std::min<uint64_t>(file.size, FormatLine().size() + static_cast<uint64_t>(kMaxCheckpointHeaderBytes) + 1);
  size_t chunk = size_t{64} << 10;
  start.clear();
  while (true) {
    const size_t old_size = start.size();
    const size_t want = std::min<uint64_t>(chunk, limit - old_size);
    start.resize(old_size + want);
    RETURN_IF_ERROR(ReadAt(file.fd, old_size, start.data() + old_size, want, path));
    if (old_size == 0 && start.size() >= FormatLine().size()) {
      RETURN_IF_ERROR(CheckFormatLine(start, path));
    }
    const size_t search_from = std::max(old_size, FormatLine().size());
    if (start.size() >= limit ||
        (start.size() > search_from && start.find('\n', search_from) != std::string::npos)) {
      break;
    }
    chunk *= 2;
  }
  ASSIGN_OR_RETURN(Header header, ParseHeader(start, start.size() == file.size, path));
  RETURN_IF_ERROR(CheckPayloadSize(header, file.size, path));
  return header;
}

// ---------------------------------------------------------------------------------------
// Writing.

absl::StatusOr<std::string> DumpMeta(const json& meta) {
  if (meta.is_null()) return std::string("{}");
  if (!meta.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint metadata must be a JSON object, not a(n) ", meta.type_name()));
  }
  try {
    return meta.dump();
  } catch (const json::exception& e) {  // type_error.316: a string that is not valid UTF-8
    return absl::InvalidArgumentError(absl::StrCat("checkpoint metadata cannot be written as JSON: ", e.what()));
  }
}

std::string HeaderLine(uint64_t payload_bytes, uint32_t crc, uint32_t meta_crc, const std::string& meta_text) {
  return absl::StrCat("{\"payload_bytes\":", payload_bytes, ",\"crc32\":", crc, ",\"meta_crc32\":", meta_crc,
                      ",\"meta\":", meta_text, "}");
}

bool IsValidTensorName(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

absl::Status ValidateContents(const CheckpointContents& contents) {
  if (contents.model == nullptr) return absl::InvalidArgumentError("a checkpoint needs a model");
  std::set<std::string> names;
  for (const auto& [name, tensor] : contents.tensors) {
    if (!IsValidTensorName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint tensor name '", name, "' is not a non-empty string of [A-Za-z0-9_.-]"));
    }
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor '", name, "' is given twice"));
    }
    if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor '", name, "' is undefined"));
  }
  return absl::OkStatus();
}

// The archive stores whole storages: a view of a larger tensor is copied out first.
at::Tensor Compact(const at::Tensor& tensor) {
  at::Tensor t = tensor.detach();
  if (!t.is_contiguous() || t.storage_offset() != 0 || t.storage().nbytes() != t.nbytes()) t = t.clone();
  return t;
}

// A guess of the archive's size, so the buffer rarely grows (each growth copies it).
size_t EstimatePayloadBytes(const CheckpointContents& contents) {
  size_t params = 0, other = size_t{1} << 20;
  for (const auto& p : contents.model->parameters()) params += p.nbytes();
  for (const auto& b : contents.model->buffers()) other += b.nbytes();
  for (const auto& [name, t] : contents.tensors) other += t.nbytes();
  // Adam keeps two tensors per parameter, SGD with momentum one.
  return params * (contents.optimizer != nullptr ? 3 : 1) + other;
}

// ---------------------------------------------------------------------------------------
// Reading the model.

// A stored tensor and the model tensor it is copied into.
struct Assignment {
  at::Tensor target;
  at::Tensor stored;
};

bool HoldsNonFinite(const at::Tensor& t) {
  if (!t.is_floating_point() && !t.is_complex()) return false;
  return !t.isfinite().all().item<bool>();
}

// Pairs every parameter and buffer of `module` (recursively) with its stored tensor, and
// checks names, shapes and values; nothing is copied yet.
absl::Status CollectModule(torch::serialize::InputArchive& archive, torch::nn::Module& module,
                           const std::string& prefix, std::vector<Assignment>& out) {
  std::set<std::string> expected;
  auto collect = [&](const auto& named, bool is_buffer) -> absl::Status {
    for (const auto& item : named) {
      const std::string name = absl::StrCat(prefix, item.key());
      expected.insert(item.key());
      at::Tensor stored;
      if (!archive.try_read(item.key(), stored, is_buffer)) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint has no tensor '", name, "': another model"));
      }
      if (!stored.sizes().equals(item.value().sizes())) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor '", name, "' has shape ",
                                                       c10::str(stored.sizes()), " but the model expects ",
                                                       c10::str(item.value().sizes())));
      }
      if (HoldsNonFinite(stored)) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor '", name, "' holds NaN/Inf"));
      }
      out.push_back({item.value(), std::move(stored)});
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(collect(module.named_parameters(/*recurse=*/false), false));
  RETURN_IF_ERROR(collect(module.named_buffers(/*recurse=*/false), true));
  for (const auto& child : module.named_children()) {
    if (!child.value()->is_serializable()) continue;
    expected.insert(child.key());
    torch::serialize::InputArchive child_archive;
    if (!archive.try_read(child.key(), child_archive)) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint has no module '", prefix, child.key(), "': another model"));
    }
    RETURN_IF_ERROR(CollectModule(child_archive, *child.value(), absl::StrCat(prefix, child.key(), "."), out));
  }
  for (const std::string& key : archive.keys()) {
    if (expected.count(key) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint has '", prefix, key, "', which the model lacks: another model"));
    }
  }
  return absl::OkStatus();
}

// The first tensor under `archive` (recursively) that holds NaN/Inf, named as LoadModel
// names model tensors ("lstm.weight_ih_l0"; "optimizer.<...>", "tensors/<name>" for the
// rest), or "" if none does. Non-tensor entries (step counts, options) are skipped.
std::string FirstNonFinite(torch::serialize::InputArchive& archive, const std::string& prefix) {
  for (const std::string& key : archive.keys()) {
    at::Tensor tensor;
    torch::serialize::InputArchive child;
    if (archive.try_read(key, tensor, /*is_buffer=*/false) || archive.try_read(key, tensor, /*is_buffer=*/true)) {
      if (HoldsNonFinite(tensor)) return prefix + key;
    } else if (archive.try_read(key, child)) {
      std::string found = FirstNonFinite(child, prefix.empty() && key == "model" ? "" : prefix + key + ".");
      if (!found.empty()) return found;
    }
  }
  return "";
}

// c10 errors while reading a verified payload mean the payload does not fit the caller's
// model or optimizer: an InvalidArgument naming the checkpoint.
template <typename Fn>
absl::Status GuardRead(const std::string& context, Fn&& fn) {
  absl::Status status = common::GuardTorch(context, std::forward<Fn>(fn));
  if (status.code() == absl::StatusCode::kInternal) return absl::InvalidArgumentError(status.message());
  return status;
}

}  // namespace

// ---------------------------------------------------------------------------------------

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string tmp = TempPathFor(path);
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (fd.get() < 0) return ErrnoStatus("cannot create", tmp);
  absl::Status status = WriteAll(fd.get(), contents.data(), contents.size(), tmp);
  if (status.ok() && ::fsync(fd.get()) != 0) status = ErrnoStatus("cannot fsync", tmp);
  if (status.ok() && ::close(fd.Release()) != 0) status = ErrnoStatus("cannot close", tmp);
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) status = ErrnoStatus("cannot rename to", path);
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  return FsyncDirectoryOf(path);
}

absl::StatusOr<std::string> SerializeCheckpoint(const CheckpointContents& contents) {
  RETURN_IF_ERROR(ValidateContents(contents));
  ASSIGN_OR_RETURN(const std::string meta_text, DumpMeta(contents.meta));
  const uint32_t meta_crc = Crc32(meta_text.data(), meta_text.size());
  // The header's length depends on the payload's size and checksum: reserve room for the
  // longest numbers, write the payload after it, then fill the header in and pad it with
  // spaces (JSON whitespace), so the payload is never copied.
  const size_t header_room =
      FormatLine().size() +
      HeaderLine(std::numeric_limits<uint64_t>::max(), 0xffffffffu, meta_crc, meta_text).size() + 1;
  std::string bytes;
  RETURN_IF_ERROR(common::GuardTorch("cannot serialize checkpoint", [&] {
    bytes.reserve(header_room + EstimatePayloadBytes(contents));
    bytes.assign(header_room, ' ');
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive model_archive(archive.compilation_unit());
    contents.model->save(model_archive);
    archive.write("model", model_archive);
    if (contents.optimizer != nullptr) {
      torch::serialize::OutputArchive optimizer_archive(archive.compilation_unit());
      contents.optimizer->save(optimizer_archive);
      archive.write("optimizer", optimizer_archive);
    }
    for (const auto& [name, tensor] : contents.tensors) {
      archive.write(absl::StrCat("tensors/", name), Compact(tensor), /*is_buffer=*/true);
    }
    archive.save_to([&](const void* data, size_t size) {
      bytes.append(static_cast<const char*>(data), size);
      return size;
    });
    return absl::OkStatus();
  }));
  const uint64_t payload_bytes = bytes.size() - header_room;
  const uint32_t crc = Crc32(bytes.data() + header_room, payload_bytes);
  std::string header = absl::StrCat(FormatLine(), HeaderLine(payload_bytes, crc, meta_crc, meta_text));
  TORCH_INTERNAL_ASSERT(header.size() < header_room);
  header.resize(header_room - 1, ' ');
  header.push_back('\n');
  std::memcpy(bytes.data(), header.data(), header_room);
  return bytes;
}

absl::Status SaveCheckpoint(const std::string& path, const CheckpointContents& contents) {
  ASSIGN_OR_RETURN(const std::string bytes, SerializeCheckpoint(contents));
  return WriteFileAtomically(path, bytes);
}

absl::Status SaveCheckpoint(const std::string& path, const nlohmann::json& meta, torch::nn::Module& model,
                            torch::optim::Optimizer* optimizer) {
  CheckpointContents contents;
  contents.meta = meta;
  contents.model = &model;
  contents.optimizer = optimizer;
  return SaveCheckpoint(path, contents);
}

// ---------------------------------------------------------------------------------------

CheckpointReader::CheckpointReader() = default;
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;
CheckpointReader& CheckpointReader::operator=(CheckpointReader&&) noexcept = default;
CheckpointReader::~CheckpointReader() = default;

absl::StatusOr<CheckpointReader> CheckpointReader::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(OpenedFile file, OpenForReading(path));
  Fd fd(file.fd);
  std::string bytes;
  RETURN_IF_ERROR(ReadHeader(file, path, bytes).status());  // refuses a foreign or truncated file early
  const size_t have = bytes.size();
  bytes.resize(file.size);
  RETURN_IF_ERROR(ReadAt(fd.get(), have, bytes.data() + have, file.size - have, path));
  return FromBytes(std::move(bytes), path);
}

absl::StatusOr<CheckpointReader> CheckpointReader::FromBytes(std::string bytes, std::string name) {
  ASSIGN_OR_RETURN(Header header, ParseHeader(bytes, /*whole_file=*/true, name));
  RETURN_IF_ERROR(CheckPayloadSize(header, bytes.size(), name));
  if (Crc32(bytes.data() + header.size, header.payload_bytes) != header.crc32) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": checksum mismatch: the file is corrupt"));
  }
  CheckpointReader reader;
  reader.archive_ = std::make_unique<torch::serialize::InputArchive>();
  RETURN_IF_ERROR(GuardRead(absl::StrCat(name, ": the payload is not a readable torch archive"), [&] {
    reader.archive_->load_from(bytes.data() + header.size, header.payload_bytes, torch::Device(torch::kCPU));
    return absl::OkStatus();
  }));
  bool has_model = false;
  for (const std::string& key : reader.archive_->keys()) {
    if (key == "model") has_model = true;
    if (key == "optimizer") reader.has_optimizer_ = true;
    if (absl::StartsWith(key, "tensors/")) reader.tensor_names_.push_back(key.substr(std::strlen("tensors/")));
  }
  if (!has_model) return absl::InvalidArgumentError(absl::StrCat(name, " holds no model"));
  // Note [non-finite checkpoints]: a NaN/Inf anywhere (weights, optimizer moments, the LM
  // hidden state) would only surface later as a failed sample or a non-finite gradient;
  // the whole checkpoint is refused when read, like a checksum mismatch.
  std::string non_finite;
  RETURN_IF_ERROR(GuardRead(absl::StrCat(name, ": the payload is not a readable torch archive"), [&] {
    non_finite = FirstNonFinite(*reader.archive_, "");
    return absl::OkStatus();
  }));
  if (!non_finite.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": checkpoint tensor '", non_finite, "' holds NaN/Inf"));
  }
  std::sort(reader.tensor_names_.begin(), reader.tensor_names_.end());
  reader.payload_offset_ = header.size;
  reader.meta_ = std::move(header.meta);
  reader.bytes_ = std::move(bytes);
  reader.name_ = std::move(name);
  return reader;
}

absl::Status CheckpointReader::LoadModel(torch::nn::Module& model) const {
  std::vector<Assignment> assignments;
  RETURN_IF_ERROR(GuardRead(absl::StrCat("cannot load the model from ", name_), [&] {
    torch::serialize::InputArchive model_archive;
    archive_->read("model", model_archive);
    absl::Status status = CollectModule(model_archive, model, "", assignments);
    if (!status.ok()) return absl::InvalidArgumentError(absl::StrCat(name_, ": ", status.message()));
    torch::NoGradGuard no_grad;
    for (auto& a : assignments) a.target.copy_(a.stored);
    return absl::OkStatus();
  }));
  return absl::OkStatus();
}

absl::Status CheckpointReader::LoadOptimizer(torch::optim::Optimizer& optimizer) const {
  if (!has_optimizer_) return absl::InvalidArgumentError(absl::StrCat(name_, " holds no optimizer state"));
  torch::Device device(torch::kCPU);
  for (const auto& group : optimizer.param_groups()) {
    if (!group.params().empty()) {
      device = group.params().front().device();
      break;
    }
  }
  const std::string context = absl::StrCat("cannot load the optimizer state from ", name_, " (another optimizer?)");
  return GuardRead(context, [&] {
    torch::serialize::InputArchive optimizer_archive;
    if (device.is_cpu()) {
      archive_->read("optimizer", optimizer_archive);
    } else {  // c10 optimizers do not move loaded state to their parameters' device
      torch::serialize::InputArchive on_device;
      on_device.load_from(bytes_.data() + payload_offset_, bytes_.size() - payload_offset_, device);
      on_device.read("optimizer", optimizer_archive);
    }
    optimizer.load(optimizer_archive);
    return absl::OkStatus();
  });
}

absl::StatusOr<at::Tensor> CheckpointReader::Tensor(const std::string& name) const {
  at::Tensor tensor;
  if (!archive_->try_read(absl::StrCat("tensors/", name), tensor, /*is_buffer=*/true)) {
    return absl::InvalidArgumentError(absl::StrCat(name_, " has no tensor '", name, "' (it has: ",
                                                   tensor_names_.empty() ? "none" : absl::StrJoin(tensor_names_, ", "),
                                                   ")"));
  }
  return tensor;
}

absl::StatusOr<nlohmann::json> ReadCheckpointMeta(const std::string& path) {
  ASSIGN_OR_RETURN(OpenedFile file, OpenForReading(path));
  Fd fd(file.fd);
  std::string start;
  ASSIGN_OR_RETURN(Header header, ReadHeader(file, path, start));
  return std::move(header.meta);
}

absl::Status LoadCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer) {
  ASSIGN_OR_RETURN(CheckpointReader reader, CheckpointReader::FromFile(path));
  RETURN_IF_ERROR(reader.LoadModel(model));
  if (optimizer != nullptr) RETURN_IF_ERROR(reader.LoadOptimizer(*optimizer));
  return absl::OkStatus();
}

}  // namespace distrnn::train
