// A CUDA graph captured from the engine's stream: record a piece of work once (every kernel
// launch, copy and memset it queues), then launch it again and again at the cost of one launch.
// A small multi-task network's step is hundreds of tiny kernels, so launch overhead, not
// arithmetic, bounds it; replaying the step as one graph removes that overhead.
//
// Whatever runs inside capture() must not wait for the device (no read back, no allocation,
// no synchronisation): the capture then fails with an error naming what was refused.
#pragma once

#include <functional>
#include <memory>

namespace polytask {

// True while this thread runs the body of a CudaGraph capture: what it queues is recorded and
// replayed as is, so work whose arguments must change per step (host staging) refuses then.
bool capturing_cuda_graph();

class CudaGraph {
 public:
  // Captures what `body` queues on cuda_stream(); `what` names it in errors.
  CudaGraph(const char* what, const std::function<void()>& body);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Queues the whole recorded work on cuda_stream().
  void launch() const;

 private:
  struct Handles;
  std::unique_ptr<Handles> handles_;
  const char* what_;
};

}  // namespace polytask
