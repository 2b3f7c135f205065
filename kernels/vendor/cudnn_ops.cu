// cuDNN pooling and batch-norm wrappers (kernels/vendor/cudnn_ops.h). Host code only; the .cu
// suffix puts it in polytask_vendor with the other vendor wrappers.
#include "kernels/vendor/cudnn_ops.h"

#include <limits>

#include "kernels/error.h"

namespace polytask::kernels::vendor {

namespace {

int to_int(const char* op, int64_t v) {
  if (v < 0 || v > std::numeric_limits<int>::max()) fail(op, ": dimension ", v, " out of range");
  return int(v);
}

class PoolingDescriptor {
 public:
  explicit PoolingDescriptor(const MaxPool2dShape& s) {
    POLYTASK_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&desc_));
    POLYTASK_CUDNN_CHECK(cudnnSetPooling2dDescriptor(
        desc_, CUDNN_POOLING_MAX_DETERMINISTIC, CUDNN_PROPAGATE_NAN, to_int("pooling", s.k_h),
        to_int("pooling", s.k_w), 0, 0, to_int("pooling", s.stride_h),
        to_int("pooling", s.stride_w)));
  }
  ~PoolingDescriptor() { cudnnDestroyPoolingDescriptor(desc_); }
  PoolingDescriptor(const PoolingDescriptor&) = delete;
  PoolingDescriptor& operator=(const PoolingDescriptor&) = delete;
  cudnnPoolingDescriptor_t get() const { return desc_; }

 private:
  cudnnPoolingDescriptor_t desc_ = nullptr;
};

// The 1xCx1x1 descriptor cuDNN derives for the per-channel tensors of a BN mode.
class BatchNormParamDescriptor {
 public:
  BatchNormParamDescriptor(const TensorDescriptor& x, cudnnBatchNormMode_t mode) {
    POLYTASK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_));
    POLYTASK_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(desc_, x.get(), mode));
  }
  ~BatchNormParamDescriptor() { cudnnDestroyTensorDescriptor(desc_); }
  BatchNormParamDescriptor(const BatchNormParamDescriptor&) = delete;
  BatchNormParamDescriptor& operator=(const BatchNormParamDescriptor&) = delete;
  cudnnTensorDescriptor_t get() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

// (N, C, spatial) as N x C x spatial x 1: cuDNN's spatial statistics run over N·H·W either way.
// spatial = 1 is a (N, F) feature tensor, normalised per activation.
cudnnBatchNormMode_t batchnorm_mode(const BatchNormShape& s) {
  return s.spatial == 1 ? CUDNN_BATCHNORM_PER_ACTIVATION : CUDNN_BATCHNORM_SPATIAL;
}

void bind(const CudnnHandle& handle, cuda::Stream stream) {
  POLYTASK_CUDNN_CHECK(cudnnSetStream(handle.get(), stream));
}

const float kOne = 1.0f, kZero = 0.0f;
const float* blend(GradMode mode) { return mode == GradMode::Accumulate ? &kOne : &kZero; }

}  // namespace

void cudnn_max_pool2d_forward(const CudnnHandle& handle, const MaxPool2dShape& s, const float* x,
                              float* y, cuda::Stream stream) {
  bind(handle, stream);
  const PoolingDescriptor pool(s);
  const TensorDescriptor x_desc(s.n, s.c, s.h_in, s.w_in), y_desc(s.n, s.c, s.h_out, s.w_out);
  POLYTASK_CUDNN_CHECK(
      cudnnPoolingForward(handle.get(), pool.get(), &kOne, x_desc.get(), x, &kZero, y_desc.get(), y));
}

void cudnn_max_pool2d_backward(const CudnnHandle& handle, const MaxPool2dShape& s, const float* x,
                               const float* y, const float* dy, float* dx, GradMode mode,
                               cuda::Stream stream) {
  bind(handle, stream);
  const PoolingDescriptor pool(s);
  const TensorDescriptor x_desc(s.n, s.c, s.h_in, s.w_in), y_desc(s.n, s.c, s.h_out, s.w_out);
  POLYTASK_CUDNN_CHECK(cudnnPoolingBackward(handle.get(), pool.get(), &kOne, y_desc.get(), y,
                                            y_desc.get(), dy, x_desc.get(), x, blend(mode),
                                            x_desc.get(), dx));
}

void cudnn_batchnorm_forward_train(const CudnnHandle& handle, const BatchNormShape& s,
                                   const float* x, const float* gamma, const float* beta,
                                   float eps, float keras_momentum, float* y, float* save_mean,
                                   float* save_invstd, float* running_mean, float* running_var,
                                   cuda::Stream stream) {
  bind(handle, stream);
  const cudnnBatchNormMode_t mode = batchnorm_mode(s);
  const TensorDescriptor x_desc(s.n, s.c, s.spatial, 1);
  const BatchNormParamDescriptor param_desc(x_desc, mode);
  POLYTASK_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      handle.get(), mode, &kOne, &kZero, x_desc.get(), x, x_desc.get(), y, param_desc.get(), gamma,
      beta, 1.0 - double(keras_momentum), running_mean, running_var, double(eps), save_mean,
      save_invstd));
}

void cudnn_batchnorm_forward_infer(const CudnnHandle& handle, const BatchNormShape& s,
                                   const float* x, const float* gamma, const float* beta,
                                   const float* running_mean, const float* running_var, float eps,
                                   float* y, cuda::Stream stream) {
  bind(handle, stream);
  const cudnnBatchNormMode_t mode = batchnorm_mode(s);
  const TensorDescriptor x_desc(s.n, s.c, s.spatial, 1);
  const BatchNormParamDescriptor param_desc(x_desc, mode);
  POLYTASK_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      handle.get(), mode, &kOne, &kZero, x_desc.get(), x, x_desc.get(), y, param_desc.get(), gamma,
      beta, running_mean, running_var, double(eps)));
}

void cudnn_batchnorm_backward(const CudnnHandle& handle, const BatchNormShape& s, const float* x,
                              const float* dy, const float* gamma, const float* save_mean,
                              const float* save_invstd, float eps, float* dx, float* dgamma,
                              float* dbeta, GradMode mode, cuda::Stream stream) {
  if (dx == nullptr || dgamma == nullptr || dbeta == nullptr)
    fail("cudnn_batchnorm_backward: cuDNN writes dx, dgamma and dbeta; none may be null");
  bind(handle, stream);
  const cudnnBatchNormMode_t bn_mode = batchnorm_mode(s);
  const TensorDescriptor x_desc(s.n, s.c, s.spatial, 1);
  const BatchNormParamDescriptor param_desc(x_desc, bn_mode);
  POLYTASK_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      handle.get(), bn_mode, &kOne, blend(mode), &kOne, blend(mode), x_desc.get(), x,
      x_desc.get(), dy, x_desc.get(), dx, param_desc.get(), gamma, dgamma, dbeta, double(eps),
      save_mean, save_invstd));
}

}  // namespace polytask::kernels::vendor
