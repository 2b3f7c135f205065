// cuDNN convolution wrapper (see cudnn_conv.h): descriptors, FMA-only algorithm choice, one
// workspace per object.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/vendor/cudnn_conv.h"

namespace polytask::kernels::vendor {

namespace {

int checked_int(const char* what, int64_t value) {
  if (value < 0 || value > std::numeric_limits<int>::max())
    fail("CudnnConv2d: ", what, " = ", value, " does not fit cuDNN's int");
  return int(value);
}

// cuDNN's output size for a symmetric padding `pad` on both sides.
int64_t cudnn_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t span = in + 2 * pad - kernel;
  return span < 0 ? 0 : span / stride + 1;
}

const char* algorithm_name(cudnnConvolutionFwdAlgo_t algo) {
  switch (algo) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM:
      return "IMPLICIT_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
      return "IMPLICIT_PRECOMP_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:
      return "GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT:
      return "DIRECT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT:
      return "FFT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING:
      return "FFT_TILING";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD:
      return "WINOGRAD";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED:
      return "WINOGRAD_NONFUSED";
    default:
      return "forward algorithm ?";
  }
}

const char* algorithm_name(cudnnConvolutionBwdDataAlgo_t algo) {
  switch (algo) {
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0:
      return "ALGO_0";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1:
      return "ALGO_1";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT:
      return "FFT";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING:
      return "FFT_TILING";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD:
      return "WINOGRAD";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED:
      return "WINOGRAD_NONFUSED";
    default:
      return "backward-data algorithm ?";
  }
}

const char* algorithm_name(cudnnConvolutionBwdFilterAlgo_t algo) {
  switch (algo) {
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0:
      return "ALGO_0";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1:
      return "ALGO_1";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT:
      return "FFT";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3:
      return "ALGO_3";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED:
      return "WINOGRAD_NONFUSED";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING:
      return "FFT_TILING";
    default:
      return "backward-filter algorithm ?";
  }
}

// The first (best) result that ran, or would run, with the math asked for: FMA only, or
// (TensorOp) anything but a down-conversion to FP16/BF16. cuDNN sorts them by time (Find) or
// expected performance (heuristics). Throws when there is none.
template <class Perf>
const Perf& first_result(const char* op, const Perf* results, int count, CudnnMath math) {
  std::string seen;
  for (int i = 0; i < count; ++i) {
    const bool math_ok = math == CudnnMath::Fma
                             ? results[i].mathType == CUDNN_FMA_MATH
                             : results[i].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    if (results[i].status == CUDNN_STATUS_SUCCESS && math_ok) return results[i];
    seen += cat(" [", algorithm_name(results[i].algo), ": ", cudnnGetErrorString(results[i].status),
                ", math type ", int(results[i].mathType), "]");
  }
  fail("CudnnConv2d: no ", op, " algorithm runs with ",
       math == CudnnMath::Fma ? "CUDNN_FMA_MATH" : "CUDNN_TENSOR_OP_MATH", "; cuDNN offered", seen);
}

// Scratch device memory for the algorithm search, freed on every exit path.
class Scratch {
 public:
  explicit Scratch(size_t bytes) : bytes_(std::max<size_t>(bytes, 4)) {
    POLYTASK_CUDA_CHECK(cudaMalloc(&data_, bytes_));
    POLYTASK_CUDA_CHECK(cudaMemset(data_, 0, bytes_));
  }
  ~Scratch() { cudaFree(data_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_;
  void* data_ = nullptr;
};

}  // namespace

bool CudnnConv2d::supports(const Conv2dShape& s) {
  return cudnn_output_size(s.h_in, s.k_h, s.stride_h, s.pad_top) == s.h_out &&
         cudnn_output_size(s.w_in, s.k_w, s.stride_w, s.pad_left) == s.w_out;
}

CudnnConv2d::CudnnConv2d(const CudnnHandle& handle, const Conv2dShape& s, CudnnAlgoPick pick,
                         CudnnMath math)
    : handle_(handle.get()),
      shape_(s),
      x_desc_(s.n, s.c_in, s.h_in, s.w_in),
      y_desc_(s.n, s.c_out, s.h_out, s.w_out),
      bias_desc_(1, s.c_out, 1, 1),
      math_(math) {
  if (!supports(s))
    fail("CudnnConv2d: cuDNN's symmetric padding cannot express this shape (pads ", s.pad_top, "/",
         s.pad_left, " give a different output size than ", s.h_out, "x", s.w_out, ")");
  try {
    POLYTASK_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_desc_));
    POLYTASK_CUDNN_CHECK(cudnnSetFilter4dDescriptor(
        w_desc_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, checked_int("c_out", s.c_out),
        checked_int("c_in", s.c_in), checked_int("k_h", s.k_h), checked_int("k_w", s.k_w)));
    POLYTASK_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_desc_));
    POLYTASK_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv_desc_, checked_int("pad_top", s.pad_top), checked_int("pad_left", s.pad_left),
        checked_int("stride_h", s.stride_h), checked_int("stride_w", s.stride_w), 1, 1,
        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    POLYTASK_CUDNN_CHECK(cudnnSetConvolutionMathType(
        conv_desc_, math == CudnnMath::Fma ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    POLYTASK_CUDNN_CHECK(cudnnCreateActivationDescriptor(&relu_desc_));
    POLYTASK_CUDNN_CHECK(
        cudnnSetActivationDescriptor(relu_desc_, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));

    int n = 0, c = 0, h = 0, w = 0;
    POLYTASK_CUDNN_CHECK(
        cudnnGetConvolution2dForwardOutputDim(conv_desc_, x_desc_.get(), w_desc_, &n, &c, &h, &w));
    if (n != s.n || c != s.c_out || h != s.h_out || w != s.w_out)
      fail("CudnnConv2d: cuDNN computes a ", n, "x", c, "x", h, "x", w, " output for a ", s.n, "x",
           s.c_out, "x", s.h_out, "x", s.w_out, " shape");

    if (pick == CudnnAlgoPick::Fastest)
      choose_fastest();
    else
      choose_heuristic();

    size_t forward = 0, backward_data = 0, backward_filter = 0;
    use_math(forward_math_);
    POLYTASK_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(
        handle_, x_desc_.get(), w_desc_, conv_desc_, y_desc_.get(), forward_algo_, &forward));
    use_math(backward_data_math_);
    POLYTASK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
        handle_, w_desc_, y_desc_.get(), conv_desc_, x_desc_.get(), backward_data_algo_,
        &backward_data));
    use_math(backward_filter_math_);
    POLYTASK_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        handle_, x_desc_.get(), y_desc_.get(), conv_desc_, w_desc_, backward_filter_algo_,
        &backward_filter));
    workspace_bytes_ = std::max({forward, backward_data, backward_filter});
    if (workspace_bytes_ > 0) POLYTASK_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
  } catch (...) {
    release();  // the destructor does not run for a constructor that throws
    throw;
  }
}

CudnnConv2d::~CudnnConv2d() { release(); }

void CudnnConv2d::use_math(cudnnMathType_t math) const {
  // FMA objects keep the descriptor as the constructor set it (nothing to do per call).
  if (math_ == CudnnMath::TensorOp)
    POLYTASK_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, math));
}

void CudnnConv2d::release() {
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (relu_desc_ != nullptr) cudnnDestroyActivationDescriptor(relu_desc_);
  if (conv_desc_ != nullptr) cudnnDestroyConvolutionDescriptor(conv_desc_);
  if (w_desc_ != nullptr) cudnnDestroyFilterDescriptor(w_desc_);
  workspace_ = nullptr;
  relu_desc_ = nullptr;
  conv_desc_ = nullptr;
  w_desc_ = nullptr;
}

void CudnnConv2d::choose_heuristic() {
  cudnnConvolutionFwdAlgoPerf_t forward[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  cudnnConvolutionBwdDataAlgoPerf_t backward_data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  cudnnConvolutionBwdFilterAlgoPerf_t backward_filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int count = 0;
  POLYTASK_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
      handle_, x_desc_.get(), w_desc_, conv_desc_, y_desc_.get(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
      &count, forward));
  {
    const auto& chosen = first_result("forward", forward, count, math_);
    forward_algo_ = chosen.algo;
    forward_math_ = chosen.mathType;
  }
  POLYTASK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
      handle_, w_desc_, y_desc_.get(), conv_desc_, x_desc_.get(),
      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, backward_data));
  {
    const auto& chosen = first_result("backward-data", backward_data, count, math_);
    backward_data_algo_ = chosen.algo;
    backward_data_math_ = chosen.mathType;
  }
  POLYTASK_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
      handle_, x_desc_.get(), y_desc_.get(), conv_desc_, w_desc_,
      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, backward_filter));
  {
    const auto& chosen = first_result("backward-filter", backward_filter, count, math_);
    backward_filter_algo_ = chosen.algo;
    backward_filter_math_ = chosen.mathType;
  }
}

void CudnnConv2d::choose_fastest() {
  const Conv2dShape& s = shape_;
  // cuDNN times every algorithm on these tensors (zeros: the values do not change the timing
  // of FMA code). Outputs land in the scratch inputs of the other passes, which is harmless.
  const Scratch x(size_t(s.n * s.c_in * s.h_in * s.w_in) * sizeof(float));
  const Scratch w(size_t(s.c_out * s.patch_size()) * sizeof(float));
  const Scratch y(size_t(s.n * s.c_out * s.h_out * s.w_out) * sizeof(float));
  // Algorithms that need more than a quarter of the free memory (capped at 1 GiB) are skipped.
  size_t free_bytes = 0, total_bytes = 0;
  POLYTASK_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const Scratch search(std::min<size_t>(free_bytes / 4, size_t(1) << 30));
  POLYTASK_CUDNN_CHECK(cudnnSetStream(handle_, nullptr));

  cudnnConvolutionFwdAlgoPerf_t forward[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  cudnnConvolutionBwdDataAlgoPerf_t backward_data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  cudnnConvolutionBwdFilterAlgoPerf_t backward_filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int count = 0;
  POLYTASK_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
      handle_, x_desc_.get(), x.get(), w_desc_, w.get(), conv_desc_, y_desc_.get(), y.get(),
      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, forward, search.get(), search.bytes()));
  {
    const auto& chosen = first_result("forward", forward, count, math_);
    forward_algo_ = chosen.algo;
    forward_math_ = chosen.mathType;
  }
  POLYTASK_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
      handle_, w_desc_, w.get(), y_desc_.get(), y.get(), conv_desc_, x_desc_.get(), x.get(),
      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, backward_data, search.get(), search.bytes()));
  {
    const auto& chosen = first_result("backward-data", backward_data, count, math_);
    backward_data_algo_ = chosen.algo;
    backward_data_math_ = chosen.mathType;
  }
  POLYTASK_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
      handle_, x_desc_.get(), x.get(), y_desc_.get(), y.get(), conv_desc_, w_desc_, w.get(),
      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, backward_filter, search.get(),
      search.bytes()));
  {
    const auto& chosen = first_result("backward-filter", backward_filter, count, math_);
    backward_filter_algo_ = chosen.algo;
    backward_filter_math_ = chosen.mathType;
  }
  POLYTASK_CUDA_CHECK(cudaDeviceSynchronize());
}

void CudnnConv2d::forward(const float* x, const float* w, const float* b, float* y, bool relu,
                          cuda::Stream stream) const {
  const float one = 1.0f, zero = 0.0f;
  POLYTASK_CUDNN_CHECK(cudnnSetStream(handle_, stream));
  use_math(forward_math_);
  POLYTASK_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, x_desc_.get(), x, w_desc_, w,
                                               conv_desc_, forward_algo_, workspace_,
                                               workspace_bytes_, &zero, y_desc_.get(), y));
  if (b != nullptr)
    POLYTASK_CUDNN_CHECK(
        cudnnAddTensor(handle_, &one, bias_desc_.get(), b, &one, y_desc_.get(), y));
  if (relu)
    POLYTASK_CUDNN_CHECK(cudnnActivationForward(handle_, relu_desc_, &one, y_desc_.get(), y, &zero,
                                                y_desc_.get(), y));
}

void CudnnConv2d::backward_data(const float* dy, const float* w, float* dx, GradMode mode,
                                cuda::Stream stream) const {
  const float one = 1.0f, beta = mode == GradMode::Accumulate ? 1.0f : 0.0f;
  POLYTASK_CUDNN_CHECK(cudnnSetStream(handle_, stream));
  use_math(backward_data_math_);
  POLYTASK_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, w_desc_, w, y_desc_.get(), dy,
                                                    conv_desc_, backward_data_algo_, workspace_,
                                                    workspace_bytes_, &beta, x_desc_.get(), dx));
}

void CudnnConv2d::backward_filter(const float* x, const float* dy, float* dw, float* db,
                                  GradMode mode, cuda::Stream stream) const {
  const float one = 1.0f, beta = mode == GradMode::Accumulate ? 1.0f : 0.0f;
  POLYTASK_CUDNN_CHECK(cudnnSetStream(handle_, stream));
  use_math(backward_filter_math_);
  POLYTASK_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      handle_, &one, x_desc_.get(), x, y_desc_.get(), dy, conv_desc_, backward_filter_algo_,
      workspace_, workspace_bytes_, &beta, w_desc_, dw));
  if (db != nullptr)
    POLYTASK_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle_, &one, y_desc_.get(), dy, &beta,
                                                      bias_desc_.get(), db));
}

const char* CudnnConv2d::forward_algorithm() const { return algorithm_name(forward_algo_); }
const char* CudnnConv2d::backward_data_algorithm() const {
  return algorithm_name(backward_data_algo_);
}
const char* CudnnConv2d::backward_filter_algorithm() const {
  return algorithm_name(backward_filter_algo_);
}

}  // namespace polytask::kernels::vendor
