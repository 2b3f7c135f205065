#include "comm/launch.h"

#include <omp.h>

#include <cstdlib>
#include <thread>

#include "kernels/error.h"

#if defined(POLYTASK_WITH_MPI)
#include <mpi.h>

#include "comm/mpi_communicator.h"
#endif
#if defined(POLYTASK_WITH_NCCL)
#include <cuda_runtime.h>

#include "comm/nccl_communicator.h"
#endif

namespace polytask::comm {

namespace {

// The value of the first of `names` that is set, as an int; `fallback` when none is.
int env_int(std::initializer_list<const char*> names, int fallback, std::string* which = nullptr) {
  for (const char* name : names)
    if (const char* value = std::getenv(name); value && *value) {
      if (which) *which = name;
      return std::atoi(value);
    }
  return fallback;
}

#if defined(POLYTASK_WITH_MPI)
void finalize_mpi() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

void initialize_mpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  // One thread calls MPI (the training loop); OpenMP's workers never do.
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    fail(
        "MPI_Init_thread failed: this process was started by an MPI launcher but could not "
        "join its job");
  std::atexit(finalize_mpi);
}
#endif

// Ranks sharing a machine share its cores: without an explicit OMP_NUM_THREADS each rank's
// OpenMP pool gets its slice, instead of every rank spinning a thread per core.
void share_cores(const LaunchEnvironment& env) {
  if (env.local_size <= 1 || std::getenv("OMP_NUM_THREADS")) return;
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  omp_set_num_threads(std::max(1, cores / env.local_size));
}

}  // namespace

LaunchEnvironment launch_environment() {
  LaunchEnvironment env;
  // OpenMPI, MPICH/Intel MPI (Hydra, PMI), MVAPICH, then PMIx launchers (srun --mpi=pmix),
  // which name the rank but not always the size: then the size is asked of MPI after it starts.
  env.size = env_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"}, 0, &env.variable);
  env.rank = env_int({"OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK"}, 0);
  if (env.size == 0 && std::getenv("PMIX_RANK")) {
    env.variable = "PMIX_RANK";
    env.size = -1;  // unknown until MPI_Init
  }
  env.launched = env.size != 0;
  if (!env.launched) env.size = 1;
  env.local_size = env_int({"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                            "MV2_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"},
                           1);
  env.local_rank = env_int({"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                            "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"},
                           0);
  return env;
}

bool built_with_mpi() {
#if defined(POLYTASK_WITH_MPI)
  return true;
#else
  return false;
#endif
}

bool built_with_nccl() {
#if defined(POLYTASK_WITH_NCCL)
  return true;
#else
  return false;
#endif
}

void select_local_gpu() {
#if defined(POLYTASK_WITH_NCCL)
  const LaunchEnvironment env = launch_environment();
  if (!env.launched || env.size == 1) return;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) return;  // a CPU run
  cudaSetDevice(env.local_rank % devices);
#endif
}

std::unique_ptr<Communicator> connect(Device device, double timeout_seconds) {
  if (!(timeout_seconds > 0))
    fail("the collective timeout must be positive, got ", timeout_seconds, " s");
  const LaunchEnvironment env = launch_environment();
  const char* forced = std::getenv("POLYTASK_COMMUNICATOR");
  const bool one_rank_nccl = forced && std::string(forced) == "nccl";
  if (forced && !one_rank_nccl)
    fail("POLYTASK_COMMUNICATOR=", forced, ": the only choice is nccl (one process through NCCL)");
  std::unique_ptr<Communicator> comm;
  if (!env.launched) {
    if (one_rank_nccl && device == Device::CUDA) {
#if defined(POLYTASK_WITH_NCCL)
      comm = make_nccl_communicator(0, std::make_unique<SingleProcess>());
#else
      fail("POLYTASK_COMMUNICATOR=nccl: this polytask was built without NCCL");
#endif
    } else {
      comm = std::make_unique<SingleProcess>();
    }
  } else {
#if defined(POLYTASK_WITH_MPI)
    share_cores(env);
    initialize_mpi();
#if defined(POLYTASK_WITH_NCCL)
    if (device == Device::CUDA)
      comm = make_nccl_communicator(env.local_rank, std::make_unique<MpiCommunicator>());
#endif
    if (!comm) comm = std::make_unique<MpiCommunicator>();
#else
    (void)device;
    if (env.size != 1)
      fail("started by an MPI launcher (", env.variable, ") as one of ", env.size,
           " ranks, but this polytask was built without MPI: install libopenmpi-dev "
           "(scripts/install-deps.sh) and rebuild");
    comm = std::make_unique<SingleProcess>();
#endif
  }
  comm->set_timeout_seconds(timeout_seconds);
  return comm;
}

void abort_job(int exit_code) {
#if defined(POLYTASK_WITH_MPI)
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  int size = 1;
  if (initialized && !finalized) MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
#else
  (void)exit_code;
#endif
}

}  // namespace polytask::comm
