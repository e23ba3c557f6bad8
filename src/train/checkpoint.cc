#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/serialize.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace distrnn::train {
namespace {

absl::Status ErrnoStatus(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status FsyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return ErrnoStatus("cannot open", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoStatus("cannot fsync", path);
  return absl::OkStatus();
}

// Moves tmp over path and makes both the data and the rename durable.
absl::Status CommitTempFile(const std::string& tmp, const std::string& path) {
  RETURN_IF_ERROR(FsyncPath(tmp, false));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus("cannot rename to", path);
  std::string dir = std::filesystem::path(path).parent_path().string();
  return FsyncPath(dir.empty() ? "." : dir, true);
}

std::string TempPathFor(const std::string& path) { return absl::StrCat(path, ".tmp.", ::getpid()); }

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string tmp = TempPathFor(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return ErrnoStatus("cannot write", tmp);
    out << contents;
    if (!out.flush()) return ErrnoStatus("cannot write", tmp);
  }
  return CommitTempFile(tmp, path);
}

absl::Status SaveCheckpoint(const std::string& path, const nlohmann::json& meta, torch::nn::Module& model,
                            torch::optim::Optimizer* optimizer) {
  nlohmann::json full = meta;
  full["format"] = kCheckpointFormat;
  const std::string tmp = TempPathFor(path);
  absl::Status written = common::GuardTorch(absl::StrCat("cannot save checkpoint ", path), [&] {
    torch::serialize::OutputArchive archive;
    archive.write("meta", c10::IValue(full.dump()));
    torch::serialize::OutputArchive model_archive;
    model.save(model_archive);
    archive.write("model", model_archive);
    if (optimizer != nullptr) {
      torch::serialize::OutputArchive optimizer_archive;
      optimizer->save(optimizer_archive);
      archive.write("optimizer", optimizer_archive);
    }
    archive.save_to(tmp);
    return absl::OkStatus();
  });
  if (!written.ok()) {
    std::remove(tmp.c_str());
    return written;
  }
  absl::Status committed = CommitTempFile(tmp, path);
  if (!committed.ok()) std::remove(tmp.c_str());
  return committed;
}

namespace {

absl::StatusOr<nlohmann::json> ReadMeta(torch::serialize::InputArchive& archive, const std::string& path) {
  c10::IValue value;
  if (!archive.try_read("meta", value) || !value.isString()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a distrnn checkpoint (no metadata)"));
  }
  nlohmann::json meta = nlohmann::json::parse(value.toStringRef(), nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object() || meta.value("format", "") != kCheckpointFormat) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a distrnn checkpoint (format is not ",
                                                   kCheckpointFormat, ")"));
  }
  return meta;
}

absl::Status OpenArchive(const std::string& path, torch::serialize::InputArchive& archive) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return absl::NotFoundError(absl::StrCat("no such checkpoint: ", path));
  try {
    archive.load_from(path);
  } catch (...) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a readable checkpoint (truncated or foreign file)"));
  }
  return absl::OkStatus();
}

// Module::load replaces a parameter of another shape silently (Tensor::set_); we copy
// into the existing tensors and refuse any missing tensor or shape mismatch.
absl::Status LoadModuleStrict(torch::serialize::InputArchive& archive, torch::nn::Module& module,
                              const std::string& prefix) {
  torch::NoGradGuard no_grad;
  auto load_tensors = [&](auto named, bool is_buffer) -> absl::Status {
    for (auto& item : named) {
      torch::Tensor stored;
      const std::string name = absl::StrCat(prefix, item.key());
      if (!archive.try_read(item.key(), stored, is_buffer)) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint has no tensor '", name, "': another model"));
      }
      if (!stored.sizes().equals(item.value().sizes())) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor '", name, "' has shape ",
                                                       c10::str(stored.sizes()), " but the model expects ",
                                                       c10::str(item.value().sizes())));
      }
      item.value().copy_(stored);
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(load_tensors(module.named_parameters(/*recurse=*/false), false));
  RETURN_IF_ERROR(load_tensors(module.named_buffers(/*recurse=*/false), true));
  for (auto& child : module.named_children()) {
    torch::serialize::InputArchive child_archive;
    if (!archive.try_read(child.key(), child_archive)) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint has no module '", prefix, child.key(), "': another model"));
    }
    RETURN_IF_ERROR(LoadModuleStrict(child_archive, *child.value(), absl::StrCat(prefix, child.key(), ".")));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<nlohmann::json> ReadCheckpointMeta(const std::string& path) {
  torch::serialize::InputArchive archive;
  RETURN_IF_ERROR(OpenArchive(path, archive));
  return ReadMeta(archive, path);
}

absl::Status LoadCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer) {
  torch::serialize::InputArchive archive;
  RETURN_IF_ERROR(OpenArchive(path, archive));
  RETURN_IF_ERROR(ReadMeta(archive, path).status());
  return common::GuardTorch(absl::StrCat("cannot load checkpoint ", path), [&] {
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    RETURN_IF_ERROR(LoadModuleStrict(model_archive, model, ""));
    if (optimizer != nullptr) {
      torch::serialize::InputArchive optimizer_archive;
      if (archive.try_read("optimizer", optimizer_archive)) optimizer->load(optimizer_archive);
    }
    return absl::OkStatus();
  });
}

}  // namespace distrnn::train
