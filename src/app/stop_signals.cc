#include "app/stop_signals.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace distrnn::app {
namespace {

static_assert(std::atomic<int>::is_always_lock_free && std::atomic<pid_t>::is_always_lock_free,
              "the handler needs lock-free atomics");
std::atomic<int> g_pending{0};
std::atomic<bool> g_installed{false};
// "[rank r/W] [signal] ", prepared before any handler can run.
char g_prefix[64] = "[signal] ";
// The parent when it is Open MPI's launcher (mpirun / orted), else -1: its SIGTERM is
// how it ends a job (after a rank's failure, or when it was signalled itself) and it
// sends SIGKILL a second later, so the line says where the signal came from.
std::atomic<pid_t> g_launcher{-1};

pid_t MpiLauncherParent() {
  const pid_t parent = ::getppid();
  std::ifstream in("/proc/" + std::to_string(parent) + "/comm");
  std::string name;
  std::getline(in, name);
  for (const char* launcher : {"mpirun", "mpiexec", "orterun", "orted", "prterun", "prted"}) {
    if (name == launcher) return parent;
  }
  return -1;
}

// Bounded appends for the handler (no allocation, no locale, no stdio).
class LineBuffer {
 public:
  void Append(const char* text) {
    while (*text != '\0' && size_ < sizeof(data_) - 1) data_[size_++] = *text++;
  }
  void Append(long value) {
    char digits[24];
    int n = 0;
    const bool negative = value < 0;
    unsigned long v = negative ? 0UL - static_cast<unsigned long>(value) : static_cast<unsigned long>(value);
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0 && n < 23);
    if (negative) Append("-");
    while (n > 0 && size_ < sizeof(data_) - 1) data_[size_++] = digits[--n];
  }
  void WriteToStderr() const {
    size_t done = 0;
    while (done < size_) {
      const ssize_t n = ::write(STDERR_FILENO, data_ + done, size_ - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }

 private:
  char data_[320];
  size_t size_ = 0;
};

const char* Name(int signo) { return signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "signal"; }

void OnStopSignal(int signo, siginfo_t* info, void* /*context*/) {
  const int saved_errno = errno;
  LineBuffer line;
  line.Append(g_prefix);
  line.Append(Name(signo));
  if (info != nullptr && info->si_pid > 0) {
    line.Append(info->si_pid == g_launcher.load() ? " from the MPI launcher (pid " : " from pid ");
    line.Append(static_cast<long>(info->si_pid));
    if (info->si_pid == g_launcher.load()) line.Append(", ending the job)");
  }
  int expected = 0;
  if (!g_pending.compare_exchange_strong(expected, signo)) {
    line.Append(" again: exiting at once with code ");
    line.Append(static_cast<long>(128 + signo));
    line.Append("\n");
    line.WriteToStderr();
    ::_exit(128 + signo);
  }
  line.Append(": finishing this step, then writing a checkpoint and exiting with code ");
  line.Append(static_cast<long>(128 + signo));
  line.Append(" (a second signal exits at once)\n");
  line.WriteToStderr();
  errno = saved_errno;
}

}  // namespace

void InstallStopSignalHandlers() {
  const std::string prefix = absl::StrCat("[rank ", common::LogRank(), "/", common::LogWorldSize(), "] [signal] ");
  std::strncpy(g_prefix, prefix.c_str(), sizeof(g_prefix) - 1);
  if (g_installed.exchange(true)) return;
  g_launcher = MpiLauncherParent();
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_sigaction = OnStopSignal;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  // While one of them is handled the other waits, so the two never race on the flag.
  sigaddset(&action.sa_mask, SIGTERM);
  sigaddset(&action.sa_mask, SIGINT);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::signal(SIGXFSZ, SIG_IGN);
}

int PendingStopSignal() { return g_pending.load(std::memory_order_relaxed); }

}  // namespace distrnn::app
