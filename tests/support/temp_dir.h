// A fresh directory per test, removed at the end; helpers to write small files into it.
#pragma once

#include <string>

namespace distrnn::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `contents` to path()/name and returns the full path.
  std::string WriteFile(const std::string& name, const std::string& contents) const;
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs `command` through the shell; returns its exit code and fills stdout+stderr.
int RunCommand(const std::string& command, std::string* output);
// The distrnn binary under test ($DISTRNN_BINARY, set by CTest).
std::string DistrnnBinary();
// The source tree ($DISTRNN_SOURCE_DIR, set by CTest; else the tree this build came from),
// so that running a test binary by hand finds configs/ and launch/.
std::string SourceDir();

}  // namespace distrnn::testing
