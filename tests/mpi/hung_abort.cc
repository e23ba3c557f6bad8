// Linked into mpi_fault_main_hung_abort only: an MPI_Abort that never returns and never
// ends the process, as Open MPI's does when its PMIx abort deadlocks. The executable's
// definition takes the place of libmpi's for every call in the program, so the test
// sees whether the communicator's backstop ends the rank anyway.
#include <mpi.h>
#include <unistd.h>

extern "C" int MPI_Abort(MPI_Comm, int) {
  for (;;) pause();
}
