// What the emulator's two halves share: the block scheduler and memory calls
// (kernels/cuda/emulator.cpp) and the streams, stream capture and graphs
// (kernels/cuda/emulator_capture.cpp). Not for kernels or tests: they see kernels/cuda/emulator.h.
#pragma once

#include <functional>

#include "kernels/cuda/emulator.h"

namespace polytask::kernels::cuda::emulator {

// The error cudaGetLastError returns next: the runtime remembers the last failed call of any
// kind, so an ignored refusal resurfaces at the next launch check, as it does on a GPU.
cudaError_t& last_error();
// Remembers `status` when it is an error, and returns it.
cudaError_t report(cudaError_t status);

// Whether a GPU accepts this launch shape (a bad one fails with cudaErrorInvalidConfiguration).
bool valid_launch(dim3 grid, dim3 block);

// The capture rules for the calls that do not go to a stream (emulator_capture.cpp says which
// rule is whose). Each returns cudaSuccess when the call may go ahead, or the error (already
// reported, the captures it breaks invalidated).
// cudaMalloc, cudaFree: "potentially unsafe" calls, refused as the capture modes say.
cudaError_t refuse_potentially_unsafe_call();
// cudaMemcpy, cudaMemset: synchronous work on the legacy stream, and potentially unsafe.
cudaError_t refuse_synchronous_call();
// Async work on `stream` (nullptr: the legacy stream): runs `op` now, or records it into the
// stream's capture, or refuses it.
cudaError_t enqueue(CUstream_st* stream, std::function<void()> op);
// Whether `stream` is capturing now: work queued on it becomes a graph node.
bool captures(const CUstream_st* stream);

// Stream work and memory ranges ("pinned host memory and events" in emulator.cpp).
// Runs stream work now, or queues it while a test defers execution (set_deferred_execution).
void submit(std::function<void()> op);
// Runs all queued stream work: what a synchronisation waits for.
void run_pending();
// A copy as stream work; `captured`: recorded into a graph (reads `src` when replayed).
std::function<void()> async_copy(void* dst, const void* src, size_t bytes, bool captured);
void note_device_allocation(const void* p, size_t bytes);
void forget_device_allocation(const void* p);

}  // namespace polytask::kernels::cuda::emulator
