// Stop signals of `distrnn train`: SIGTERM (Slurm's time limit, `kill`) and SIGINT
// (Ctrl-C), on any rank.
//
// The first one only records the signal; the Trainer polls PendingStopSignal() after
// every step (TrainerConfig::stop_signal), the ranks agree on it in the step's
// all-reduce, write a checkpoint and exit 128 + the signal (143, 130) with one line. A
// second signal ends the process at once with that code (under MPI, mpirun then ends
// the job). The handler stores the number and write(2)s a line prepared beforehand:
// nothing else, so it is async-signal-safe whatever thread it interrupts.
//
// SIGXFSZ is ignored too: past a file-size limit (ulimit -f) a write then fails with
// EFBIG, which the checkpoint writer reports, instead of the signal killing the process.
#pragma once

namespace distrnn::app {

// Call once the log rank is set (the lines name it). Idempotent.
void InstallStopSignalHandlers();

// The first stop signal received (SIGTERM or SIGINT), or 0.
int PendingStopSignal();

}  // namespace distrnn::app
