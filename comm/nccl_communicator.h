// The Communicator of GPU ranks: NCCL sums device buffers on the engine's CUDA stream — queued
// without waiting, and captured into the training step's CUDA graph like any kernel — and MPI
// does the rest (host sums, broadcasts, barriers, and sharing NCCL's unique id at start).
#pragma once

#include <memory>

#include "engine/communicator.h"

namespace polytask::comm {

// Selects GPU local_rank (modulo the GPUs this process sees) before anything else touches the
// device. `host` does the host-side collectives and shares NCCL's unique id: the job's MPI
// communicator, or a SingleProcess for one rank without MPI (POLYTASK_COMMUNICATOR=nccl, which
// runs one process through the whole NCCL path: a check of a one-GPU machine).
std::unique_ptr<Communicator> make_nccl_communicator(int local_rank,
                                                     std::unique_ptr<Communicator> host);

}  // namespace polytask::comm
