#include "support/temp_dir.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace distrnn::testing {

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "distrnn_test_XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::WriteFile(const std::string& name, const std::string& contents) const {
  const std::string full = Join(name);
  std::filesystem::create_directories(std::filesystem::path(full).parent_path());
  std::ofstream(full, std::ios::binary) << contents;
  return full;
}

int RunCommand(const std::string& command, std::string* output) {
  // Output goes to a file, not a pipe: a process the command leaves behind (an MPI rank
  // its killed mpiexec did not take down) would otherwise hold the pipe open and hang
  // the test after `timeout` has done its job.
  std::string path = (std::filesystem::temp_directory_path() / "distrnn_run_XXXXXX").string();
  const int fd = mkstemp(path.data());
  if (fd < 0) return -1;
  close(fd);
  const int status = std::system(("( " + command + " ) > '" + path + "' 2>&1 < /dev/null").c_str());
  if (output != nullptr) {
    std::ifstream in(path, std::ios::binary);
    output->append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::remove(path.c_str());
  if (status == -1) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string DistrnnBinary() {
  const char* env = std::getenv("DISTRNN_BINARY");
  return env != nullptr ? env : "distrnn";
}

std::string SourceDir() {
  const char* env = std::getenv("DISTRNN_SOURCE_DIR");
  return env != nullptr ? env : DISTRNN_BUILT_FROM;
}

}  // namespace distrnn::testing
