// How this process was started, and the communicator of its job. A process started by mpirun
// (OpenMPI, MPICH, Intel MPI) or any launcher that sets the MPI environment (srun with PMI/PMIx)
// joins the job's other ranks; anything else runs alone on a SingleProcess communicator and
// initialises nothing.
#pragma once

#include <memory>
#include <string>

#include "engine/communicator.h"
#include "engine/device.h"

namespace polytask::comm {

// What the launcher's environment says (nothing is initialised to find out).
struct LaunchEnvironment {
  bool launched = false;  // an MPI launcher's variables are set
  int size = 1;           // the job's ranks (1 when not launched, or unknown before MPI_Init)
  int rank = 0;
  int local_size = 1;    // ranks on this machine (for splitting its cores)
  int local_rank = 0;    // this rank's index on this machine (picks its GPU)
  std::string variable;  // the variable that said so, e.g. "OMPI_COMM_WORLD_SIZE"
};
LaunchEnvironment launch_environment();

// Whether this build can join an MPI job (it found MPI at configure time), and NCCL.
bool built_with_mpi();
bool built_with_nccl();

// A rank of a job with several ranks per machine trains on GPU local_rank (modulo the GPUs it
// sees): called before anything touches a GPU. Does nothing otherwise, or in a build without
// NCCL.
void select_local_gpu();

// The job's communicator: SingleProcess when not started by an MPI launcher; else MPI between
// CPU processes, and on the GPU NCCL (its unique id shared through MPI) when this build has it,
// else MPI staging device buffers through the host. `mpirun -np 1` gets a one-rank MPI (or
// NCCL) communicator: the whole data-parallel path, with the single process's results.
// POLYTASK_COMMUNICATOR=nccl without a launcher runs one GPU process through NCCL (a check of
// the NCCL path on a machine without MPI). Initialises MPI the first time (MPI_Finalize runs at
// exit). Throws polytask::Error when launched by MPI with several ranks but built without it.
std::unique_ptr<Communicator> connect(Device device, double timeout_seconds);

// Ends every rank of the job now (MPI_Abort), after a rank's error was printed: the others may
// be waiting in a collective. Returns only when not in an MPI job.
void abort_job(int exit_code);

}  // namespace polytask::comm
