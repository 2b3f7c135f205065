// The POLYTASK_CUDA_SYNC debug switch, apart from launch.h so that host code (the engine, tests)
// can read and set it without the CUDA launch syntax.
#pragma once

namespace polytask::kernels::cuda {

// Synchronise after every launch and report the faulting op by name. Off by default; on when
// the environment has POLYTASK_CUDA_SYNC=1 or a caller sets it. A launch on a stream that is
// being captured into a CUDA graph is checked but not synchronised (a GPU refuses that); the
// engine captures no graphs while the switch is on.
bool sync_after_launch();
void set_sync_after_launch(bool on);

}  // namespace polytask::kernels::cuda
