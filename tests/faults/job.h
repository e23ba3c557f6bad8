// A command run in the background for the fault tests: its output (stdout and stderr in
// one pipe) read while it runs, so a test can act at a given training step; the PIDs of
// the MPI ranks it started; deadlines on everything. The command runs in a process group
// of its own, which the destructor kills, so a failed test leaves no rank behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>

namespace distrnn::testing {

class Job {
 public:
  // Starts `command` with /bin/sh -c (an `exec` in front spares one shell).
  explicit Job(const std::string& command);
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }
  bool running() const { return !ended_; }

  // Reads output until `done(output())` holds (true), or the job ends or `timeout_s`
  // passes (false).
  bool WaitFor(const std::function<bool(const std::string&)>& done, double timeout_s);
  // Waits for the end, reading output; after `timeout_s` kills the process group and
  // returns false. exit_code() is then the shell's: 128 + signal when signalled.
  bool Wait(double timeout_s);
  int exit_code() const { return exit_code_; }
  // When the job ended (steady clock).
  std::chrono::steady_clock::time_point end_time() const { return end_time_; }

  // The MPI ranks among the job's descendants (OMPI_COMM_WORLD_RANK in their
  // environment), by rank; a job without MPI ranks gives {0: its own pid}.
  std::map<int, pid_t> Ranks() const;

 private:
  void ReadAvailable(int timeout_ms);
  void Reap(bool block);

  pid_t pid_ = -1;
  int fd_ = -1;
  bool ended_ = false;
  int exit_code_ = -1;
  std::string output_;
  std::chrono::steady_clock::time_point end_time_;
};

// The global step (1-based) of the last progress line in `output` ("| epoch e | s/ S
// steps |"), or 0: (e - 1) * S + s.
int64_t LastLoggedStep(const std::string& output);

// Seconds since `start`.
double SecondsSince(std::chrono::steady_clock::time_point start);

}  // namespace distrnn::testing
