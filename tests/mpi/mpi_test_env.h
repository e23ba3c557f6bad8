// The world communicator of an MPI test binary (made by mpi_test_main.cc before any
// test runs, alive until after the result is reduced over the ranks).
#pragma once

#include "comm/mpi_communicator.h"

namespace distrnn::testing {

comm::MpiCommunicator& WorldComm();

}  // namespace distrnn::testing
