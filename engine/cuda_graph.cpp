#include "engine/cuda_graph.h"

#include "engine/device.h"
#include "kernels/error.h"

#if defined(POLYTASK_WITH_CUDA)
#include "kernels/cuda/check.h"
#endif

namespace polytask {

namespace {
thread_local bool capturing = false;  // the capture mode is per thread, so is this
}  // namespace

bool capturing_cuda_graph() { return capturing; }

#if defined(POLYTASK_WITH_CUDA)

struct CudaGraph::Handles {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

CudaGraph::CudaGraph(const char* what, const std::function<void()>& body)
    : handles_(std::make_unique<Handles>()), what_(what) {
  const cudaStream_t stream = cuda_stream();
  POLYTASK_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    capturing = true;
    body();
    capturing = false;
  } catch (...) {
    capturing = false;
    cudaGraph_t abandoned = nullptr;
    cudaStreamEndCapture(stream, &abandoned);
    if (abandoned) cudaGraphDestroy(abandoned);
    (void)cudaGetLastError();
    throw;
  }
  const cudaError_t ended = cudaStreamEndCapture(stream, &handles_->graph);
  if (ended != cudaSuccess) {
    (void)cudaGetLastError();
    fail("capturing ", what, " as a CUDA graph failed: ", cudaGetErrorString(ended),
         " (something in it waited for the device: a read back, an allocation or a "
         "synchronisation)");
  }
  POLYTASK_CUDA_CHECK(cudaGraphInstantiate(&handles_->exec, handles_->graph, 0));
}

CudaGraph::~CudaGraph() {
  if (handles_->exec) cudaGraphExecDestroy(handles_->exec);
  if (handles_->graph) cudaGraphDestroy(handles_->graph);
}

void CudaGraph::launch() const {
  const cudaError_t status = cudaGraphLaunch(handles_->exec, cuda_stream());
  if (status != cudaSuccess)
    fail("launching the CUDA graph of ", what_, ": ", cudaGetErrorName(status), " (",
         cudaGetErrorString(status), ")");
}

#else

struct CudaGraph::Handles {};
CudaGraph::CudaGraph(const char* what, const std::function<void()>&) : what_(what) {
  fail("a CUDA graph of ", what, " needs CUDA, which this build lacks");
}
CudaGraph::~CudaGraph() = default;
void CudaGraph::launch() const {}

#endif

}  // namespace polytask
