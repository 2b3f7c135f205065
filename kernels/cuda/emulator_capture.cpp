// Streams, stream capture and graphs of the CUDA emulator, with the capture rules of a GPU
// (kernels/cuda/emulator.h lists them with their sources). The emulator is serial: work on any
// stream outside a capture runs at once (or, while a test defers execution, queues in one
// queue for all streams), in the order it is queued.
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/cuda/emulator.h"
#include "kernels/cuda/emulator_internal.h"

namespace polytask::kernels::cuda::emulator {
namespace {

struct Node {
  std::function<void()> run;  // a kernel over its grid, or a copy/memset
};

}  // namespace
}  // namespace polytask::kernels::cuda::emulator

namespace emu = polytask::kernels::cuda::emulator;

struct CUgraph_st {
  std::vector<emu::Node> nodes;
};
struct CUgraphExec_st {
  std::vector<emu::Node> nodes;
};

namespace polytask::kernels::cuda::emulator {
namespace {

// One capture sequence, from cudaStreamBeginCapture to cudaStreamEndCapture on its stream.
struct Capture {
  std::unique_ptr<CUgraph_st> graph = std::make_unique<CUgraph_st>();
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread = std::this_thread::get_id();
  unsigned long long id = 0;
  bool invalidated = false;
};

}  // namespace
}  // namespace polytask::kernels::cuda::emulator

struct CUstream_st {
  unsigned flags = cudaStreamDefault;
  std::unique_ptr<emu::Capture> capture;  // while the stream captures
};

namespace polytask::kernels::cuda::emulator {
namespace {

// nullptr and cudaStreamLegacy both name the legacy default stream.
bool is_legacy(const CUstream_st* stream) { return !stream || stream == cudaStreamLegacy; }

// Every stream that captures now, in the order the captures began.
std::vector<CUstream_st*>& capturing_streams() {
  static std::vector<CUstream_st*> streams;
  return streams;
}

cudaStreamCaptureMode& thread_capture_mode() {
  thread_local cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  return mode;
}

// Invalidates `captures` and reports `error`, or returns cudaSuccess when there are none.
cudaError_t refuse(const std::vector<Capture*>& captures, cudaError_t error) {
  if (captures.empty()) return cudaSuccess;
  for (Capture* capture : captures) capture->invalidated = true;
  return report(error);
}

// The captures that forbid this thread a potentially unsafe call: its own captures not begun
// Relaxed, and, while its mode is Global, other threads' captures begun Global.
std::vector<Capture*> captures_forbidding_unsafe_calls() {
  std::vector<Capture*> captures;
  if (thread_capture_mode() == cudaStreamCaptureModeRelaxed) return captures;
  const std::thread::id me = std::this_thread::get_id();
  for (CUstream_st* stream : capturing_streams()) {
    Capture& c = *stream->capture;
    const bool forbids = c.thread == me
                             ? c.mode != cudaStreamCaptureModeRelaxed
                             : thread_capture_mode() == cudaStreamCaptureModeGlobal &&
                                   c.mode == cudaStreamCaptureModeGlobal;
    if (forbids) captures.push_back(&c);
  }
  return captures;
}

// The captures of blocking streams (not cudaStreamNonBlocking): the legacy stream waits for
// those streams' work, so using it would make it depend on what they capture.
std::vector<Capture*> captures_the_legacy_stream_would_join() {
  std::vector<Capture*> captures;
  for (CUstream_st* stream : capturing_streams())
    if (!(stream->flags & cudaStreamNonBlocking)) captures.push_back(stream->capture.get());
  return captures;
}

cudaError_t refuse_legacy_stream() {
  return refuse(captures_the_legacy_stream_would_join(), cudaErrorStreamCaptureImplicit);
}

std::vector<Capture*> all_captures() {
  std::vector<Capture*> captures;
  for (CUstream_st* stream : capturing_streams()) captures.push_back(stream->capture.get());
  return captures;
}

// cudaStreamSynchronize and cudaStreamQuery: a capturing stream has no work that runs, so
// waiting for it or asking about it is refused (and invalidates the capture).
cudaError_t refuse_waiting_for(CUstream_st* stream) {
  if (is_legacy(stream)) return refuse_legacy_stream();
  if (!stream->capture) return cudaSuccess;
  if (stream->capture->invalidated) return report(cudaErrorStreamCaptureInvalidated);
  return refuse({stream->capture.get()}, cudaErrorStreamCaptureUnsupported);
}

cudaStreamCaptureStatus status_of(const CUstream_st* stream) {
  if (!stream->capture) return cudaStreamCaptureStatusNone;
  return stream->capture->invalidated ? cudaStreamCaptureStatusInvalidated
                                      : cudaStreamCaptureStatusActive;
}

void stop_capturing(CUstream_st* stream) {
  auto& streams = capturing_streams();
  std::erase(streams, stream);
  stream->capture.reset();
}

}  // namespace

cudaError_t refuse_potentially_unsafe_call() {
  return refuse(captures_forbidding_unsafe_calls(), cudaErrorStreamCaptureUnsupported);
}

cudaError_t refuse_synchronous_call() {
  if (const cudaError_t refused = refuse_legacy_stream()) return refused;
  return refuse_potentially_unsafe_call();
}

cudaError_t enqueue(CUstream_st* stream, std::function<void()> op) {
  if (is_legacy(stream)) {
    if (const cudaError_t refused = refuse_legacy_stream()) return refused;
  } else if (stream->capture) {
    if (stream->capture->invalidated) return report(cudaErrorStreamCaptureInvalidated);
    stream->capture->graph->nodes.push_back({std::move(op)});
    return cudaSuccess;
  }
  submit(std::move(op));
  return cudaSuccess;
}

bool captures(const CUstream_st* stream) { return !is_legacy(stream) && stream->capture; }

void launch(const char* op, dim3 grid, dim3 block, unsigned shared_bytes, CUstream_st* stream,
            std::function<void()> body) {
  // A bad launch shape fails at capture, as on a GPU; the kernel runs at each graph launch.
  if (!is_legacy(stream) && stream->capture && !valid_launch(grid, block)) {
    report(cudaErrorInvalidConfiguration);
    return;
  }
  enqueue(stream, [op, grid, block, shared_bytes, body = std::move(body)] {
    run(op, grid, block, shared_bytes, body);
  });
}

}  // namespace polytask::kernels::cuda::emulator

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  if (!stream || (flags & ~unsigned(cudaStreamNonBlocking))) return emu::report(cudaErrorInvalidValue);
  *stream = new CUstream_st{flags, nullptr};
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (emu::is_legacy(stream)) return emu::report(cudaErrorInvalidValue);
  if (stream->capture) emu::stop_capturing(stream);  // its capture ends with it, unreturned
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  // The device encompasses every capturing stream: waiting for it waits for them.
  if (const cudaError_t refused = emu::refuse(emu::all_captures(), cudaErrorStreamCaptureUnsupported))
    return refused;
  emu::run_pending();
  return cudaSuccess;
}

// One queue serves every stream (the emulator is serial): waiting for one stream runs all of it.
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (const cudaError_t refused = emu::refuse_waiting_for(stream)) return refused;
  emu::run_pending();
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  if (const cudaError_t refused = emu::refuse_waiting_for(stream)) return refused;
  // Not ready is an answer, not an error: it is not kept for cudaGetLastError.
  return emu::pending_operations() == 0 ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  return cudaStreamGetCaptureInfo(stream, status, nullptr);
}

cudaError_t cudaStreamGetCaptureInfo(cudaStream_t stream, cudaStreamCaptureStatus* status,
                                     unsigned long long* id) {
  if (!status) return emu::report(cudaErrorInvalidValue);
  if (emu::is_legacy(stream)) {
    // Asking about the legacy stream is refused like using it, but invalidates nothing.
    if (!emu::captures_the_legacy_stream_would_join().empty())
      return emu::report(cudaErrorStreamCaptureImplicit);
    *status = cudaStreamCaptureStatusNone;
    return cudaSuccess;
  }
  *status = emu::status_of(stream);
  if (id && stream->capture) *id = stream->capture->id;
  return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  if (!mode) return emu::report(cudaErrorInvalidValue);
  std::swap(*mode, emu::thread_capture_mode());
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed)
    return emu::report(cudaErrorInvalidValue);
  // The legacy stream cannot capture, and a stream captures one sequence at a time.
  if (emu::is_legacy(stream)) return emu::report(cudaErrorStreamCaptureUnsupported);
  if (stream->capture) return emu::report(cudaErrorIllegalState);
  static unsigned long long next_id = 1;
  stream->capture = std::make_unique<emu::Capture>();
  stream->capture->mode = mode;
  stream->capture->id = next_id++;
  emu::capturing_streams().push_back(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  // Ending a capture on a stream that does not capture (another stream than the one that
  // began it, or the legacy stream) leaves any capture as it was.
  if (emu::is_legacy(stream) || !stream->capture) return emu::report(cudaErrorIllegalState);
  if (!graph) return emu::report(cudaErrorInvalidValue);
  emu::Capture& capture = *stream->capture;
  if (capture.mode != cudaStreamCaptureModeRelaxed && capture.thread != std::this_thread::get_id())
    return emu::report(cudaErrorStreamCaptureWrongThread);
  const bool invalidated = capture.invalidated;
  *graph = invalidated ? nullptr : capture.graph.release();
  emu::stop_capturing(stream);
  return invalidated ? emu::report(cudaErrorStreamCaptureInvalidated) : cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return emu::report(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return emu::report(cudaErrorInvalidValue);
  for (auto& node : exec->nodes)
    if (const cudaError_t refused = emu::enqueue(stream, node.run)) return refused;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
