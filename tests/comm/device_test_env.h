// The device of a device-parameterised test binary (--device=cpu|cuda, see
// device_test_main.cc and mpi_device_test_main.cc), and, in the MPI binary, the
// communicator for it: MpiCommunicator on CPU, NcclCommunicator on CUDA.
#pragma once

#include <c10/core/Device.h>

#include "comm/communicator.h"

namespace distrnn::testing {

c10::Device TestDevice();
// MPI binaries only.
comm::Communicator& DeviceComm();

}  // namespace distrnn::testing
