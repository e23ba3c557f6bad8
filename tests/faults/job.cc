#include "faults/job.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace distrnn::testing {
namespace {

std::vector<pid_t> Children(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  pid_t child;
  while (in >> child) out.push_back(child);
  return out;
}

// OMPI_COMM_WORLD_RANK of `pid`, or -1.
int MpiRankOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    static const std::string kKey = "OMPI_COMM_WORLD_RANK=";
    if (entry.compare(0, kKey.size(), kKey) == 0) return std::stoi(entry.substr(kKey.size()));
  }
  return -1;
}

void CollectDescendants(pid_t pid, std::vector<pid_t>& out) {
  for (pid_t child : Children(pid)) {
    out.push_back(child);
    CollectDescendants(child, out);
  }
}

void CollectRanks(pid_t pid, std::map<int, pid_t>& ranks) {
  for (pid_t child : Children(pid)) {
    const int rank = MpiRankOf(child);
    if (rank >= 0 && !ranks.count(rank)) {
      ranks[rank] = child;  // a rank's own children (none here) are not ranks
    } else {
      CollectRanks(child, ranks);
    }
  }
}

}  // namespace

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Job::Job(const std::string& command) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);  // also here, so the group exists before the destructor can run
  ::close(fds[1]);
  fd_ = fds[0];
}

Job::~Job() {
  if (!ended_) {
    // Descendants first: some leave the group (launch/mpirun.sh runs mpirun with setsid).
    std::vector<pid_t> descendants;
    CollectDescendants(pid_, descendants);
    for (pid_t p : descendants) ::kill(p, SIGKILL);
    ::kill(-pid_, SIGKILL);
    Reap(/*block=*/true);
  }
  // Anything the job left in its group (a rank SIGSTOPped by a test, say) goes too.
  ::kill(-pid_, SIGKILL);
  if (fd_ >= 0) ::close(fd_);
}

void Job::ReadAvailable(int timeout_ms) {
  if (fd_ < 0) {
    if (timeout_ms > 0) ::usleep(timeout_ms * 1000);
    return;
  }
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, timeout_ms);
  if (ready <= 0) return;
  char buffer[65536];
  const ssize_t n = ::read(fd_, buffer, sizeof(buffer));
  if (n > 0) {
    output_.append(buffer, static_cast<size_t>(n));
  } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
    ::close(fd_);  // every writer is gone
    fd_ = -1;
  }
}

void Job::Reap(bool block) {
  if (ended_) return;
  int status = 0;
  const pid_t done = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (done != pid_) return;
  ended_ = true;
  end_time_ = std::chrono::steady_clock::now();
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool Job::WaitFor(const std::function<bool(const std::string&)>& done, double timeout_s) {
  const auto start = std::chrono::steady_clock::now();
  while (!done(output_)) {
    Reap(/*block=*/false);
    if (ended_) {
      while (fd_ >= 0) ReadAvailable(100);  // the rest of the output
      return done(output_);
    }
    if (SecondsSince(start) > timeout_s) return false;
    ReadAvailable(5);
  }
  return true;
}

bool Job::Wait(double timeout_s) {
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    Reap(/*block=*/false);
    if (ended_) break;
    if (SecondsSince(start) > timeout_s) {
      ::kill(-pid_, SIGKILL);
      Reap(/*block=*/true);
      while (fd_ >= 0) ReadAvailable(100);
      return false;
    }
    ReadAvailable(20);
  }
  // Output still buffered in the pipe; stop at EOF or when no writer shows up for 2 s
  // (a rank the job left behind would hold the pipe open).
  const auto drain = std::chrono::steady_clock::now();
  while (fd_ >= 0 && SecondsSince(drain) < 2.0) ReadAvailable(100);
  return true;
}

std::map<int, pid_t> Job::Ranks() const {
  std::map<int, pid_t> ranks;
  CollectRanks(pid_, ranks);
  if (ranks.empty()) ranks[0] = pid_;
  return ranks;
}

int64_t LastLoggedStep(const std::string& output) {
  // Called every few milliseconds while a job runs: look at the last progress line only.
  for (size_t end = output.size(); end > 0;) {
    const size_t at = output.rfind("| epoch", end - 1);
    if (at == std::string::npos) return 0;
    long long epoch = 0, step = 0, per_epoch = 0;
    if (std::sscanf(output.c_str() + at, "| epoch %lld | %lld/ %lld steps |", &epoch, &step, &per_epoch) == 3) {
      return (epoch - 1) * per_epoch + step;
    }
    end = at;  // an epoch summary line ("| epoch 1 | train loss ..."): look further back
  }
  return 0;
}

}  // namespace distrnn::testing
