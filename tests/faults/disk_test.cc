// The checkpoint directory fills up or turns read-only in the middle of a run: the run
// stops with one clear line naming the checkpoint it could not write and the last
// complete one, which stays intact (`latest` names it, no partial file is left) and
// resumes to the uninterrupted result.
//
// File-size limit: RLIMIT_FSIZE lowered on the running rank 0 (prlimit; the binary
// ignores SIGXFSZ, so the write fails with EFBIG instead of the signal killing it).
// Full disk: a small tmpfs filled up mid-run. Read-only: the run dir bind-mounted over
// itself read-only mid-run. Both need mount(2) (root with CAP_SYS_ADMIN) and are skipped,
// saying so, without it.
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "faults/job.h"
#include "faults/tiny_lm.h"
#include "support/temp_dir.h"

namespace distrnn::testing {
namespace {

using ::testing::HasSubstr;

// A tmpfs of `megabytes` at `path` for the test's lifetime.
class Tmpfs {
 public:
  Tmpfs(const std::string& path, int megabytes) : path_(path) {
    std::string out;
    mounted_ = RunCommand("mkdir -p " + path + " && mount -t tmpfs -o size=" + std::to_string(megabytes) +
                              "m distrnn_test " + path, &out) == 0;
  }
  ~Tmpfs() {
    std::string out;
    if (mounted_) RunCommand("umount -l " + path_, &out);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

// Writes zeros to `path` until the file system is full.
void FillUp(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::vector<char> block(1 << 16, 0);
  while (std::fwrite(block.data(), 1, block.size(), f) == block.size() && std::fflush(f) == 0) {
  }
  std::fclose(f);
}

// Starts the tiny LM, waits until a checkpoint exists and step 8 is done, applies
// `fault`, and checks the stop, the message and the checkpoint left.
// `may_leave_temporary`: a directory that turns read-only while a checkpoint is being
// written keeps its temporary file (it can no longer be removed); never a step file.
void ExpectCleanStop(int ranks, const std::string& run, const std::function<void(Job&)>& fault,
                     const std::string& cause, bool may_leave_temporary = false,
                     const std::function<void()>& repair = [] {}) {
  TempDir data;
  TinyLm lm(data);
  Job job(lm.Command(ranks, run));
  ASSERT_TRUE(job.WaitFor([&](const std::string& out) { return LastLoggedStep(out) >= 8 && !LatestName(run).empty(); },
                          90))
      << job.output();
  fault(job);
  ASSERT_TRUE(job.Wait(60)) << job.output();
  EXPECT_EQ(job.exit_code(), 1) << job.output();
  const std::string latest = LatestName(run);
  ASSERT_FALSE(latest.empty());
  // "distrnn: error: cannot write the checkpoint of global step 12: cannot write <tmp>: File too large; the last
  // complete checkpoint, <run>/checkpoint-000000009.pt, is intact (resume with --resume=auto)"
  EXPECT_THAT(job.output(), HasSubstr("distrnn: error: cannot write the checkpoint of global step "));
  EXPECT_THAT(job.output(), HasSubstr(cause));
  EXPECT_THAT(job.output(), HasSubstr("; the last complete checkpoint, " + run + "/" + latest +
                                      ", is intact (resume with --resume=auto)"));
  if (!may_leave_temporary) {
    EXPECT_TRUE(FilesMatching(run, "checkpoint-", ".tmp.").empty()) << "a partial checkpoint was left";
    EXPECT_TRUE(FilesMatching(run, "latest", ".tmp.").empty());
  }
  repair();
  Job resume(lm.Command(ranks, run, "--resume=auto"));
  ASSERT_TRUE(resume.Wait(120)) << resume.output();
  ASSERT_EQ(resume.exit_code(), 0) << resume.output();
  EXPECT_THAT(resume.output(), HasSubstr("resumed from " + run + "/" + latest));
  EXPECT_EQ(FinalValidLoss(run), TinyLm::ReferenceValidLoss(ranks));
}

TEST(Disk, FileSizeLimitOnRank0Of2) {
  TempDir dir;
  ExpectCleanStop(
      2, dir.Join("run"),
      [](Job& job) {
        const rlimit limit{4096, 4096};
        ASSERT_EQ(::prlimit(job.Ranks().at(0), RLIMIT_FSIZE, &limit, nullptr), 0) << std::strerror(errno);
      },
      "File too large");
}

TEST(Disk, FullTmpfs) {
  TempDir dir;
  Tmpfs disk(dir.Join("disk"), 4);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)";
  const std::string filler = dir.Join("disk/filler");
  ExpectCleanStop(
      1, dir.Join("disk/run"), [&](Job&) { FillUp(filler); }, "No space left on device",
      /*may_leave_temporary=*/false, [&] { std::remove(filler.c_str()); });
}

// A read-only bind mount of the run dir over itself: new files fail with EROFS while the
// files rank 0 holds open (metrics.jsonl) stay writable, as a remount would leave them.
TEST(Disk, ReadOnlyRunDir) {
  TempDir dir;
  const std::string run = dir.Join("run");
  std::string out;
  if (RunCommand("mkdir -p " + run + " && mount --bind " + run + " " + run + " && umount " + run, &out) != 0) {
    GTEST_SKIP() << "cannot bind-mount here (needs root with CAP_SYS_ADMIN): " << out;
  }
  bool mounted = false;
  ExpectCleanStop(
      1, run,
      [&](Job&) {
        std::string text;
        mounted = RunCommand("mount --bind " + run + " " + run, &text) == 0;
        ASSERT_TRUE(mounted) << text;
        // Busy while rank 0 has a file of the new mount open for writing (a checkpoint
        // between two steps): try again.
        bool read_only = false;
        for (int attempt = 0; attempt < 500 && !read_only; ++attempt) {
          read_only = RunCommand("mount -o remount,bind,ro " + run, &text) == 0;
          if (!read_only) ::usleep(2000);
        }
        ASSERT_TRUE(read_only) << text;
      },
      "Read-only file system", /*may_leave_temporary=*/true,
      [&] {
        std::string text;
        if (mounted) EXPECT_EQ(RunCommand("umount " + run, &text), 0) << text;
        mounted = false;
      });
  if (mounted) RunCommand("umount -l " + run, &out);
}

}  // namespace
}  // namespace distrnn::testing
