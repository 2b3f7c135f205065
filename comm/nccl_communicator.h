// The Communicator of GPU ranks: NCCL sums device buffers on the engine's CUDA stream — queued
// without waiting, and captured into the training step's CUDA graph like any kernel — and MPI
// does the rest (host sums, broadcasts, barriers, and sharing NCCL's unique id at start).
#pragma once

#include <memory>

#include "engine/communicator.h"

namespace polytask::comm {

// MPI must be initialised. Selects GPU local_rank (modulo the GPUs this process sees) before
// anything else touches the device.
std::unique_ptr<Communicator> make_nccl_communicator(int local_rank);

}  // namespace polytask::comm
