// The AVX2 micro-kernels: 16 ymm registers. nn: 6 rows x 2 vectors (12 accumulators, two B
// vectors, one broadcast); nt: 3 x 4 dot products (12 accumulators, 3 A vectors, one B).
// Compiled with -mavx2 -mfma -ffp-contract=fast (kernels/CMakeLists.txt).
#define POLYTASK_MICROKERNEL_LANES 8
#define POLYTASK_MICROKERNEL_NAMESPACE avx2
#include "kernels/cpu/microkernels.h"
#include "kernels/cpu/pool_rows.h"
#include "kernels/cpu/batchnorm_channels.h"

namespace polytask::kernels::cpu {

const MicroKernels& avx2_micro_kernels() {
  static const MicroKernels kernels{CpuIsa::Avx2, 6, 16, 3, 4, 8,
                                    avx2::nn_tile<6, 2>, avx2::nt_tile<3, 4>,
                                    avx2::copy_row, avx2::add_row, avx2::fma_probe,
                                    {6, 16, avx2::gather_tile<6, 2>},
                                    {6, 16, avx2::gather_tile<6, 2>},
                                    avx2::max_pool_2x2_forward_plane,
                                    avx2::max_pool_2x2_backward_plane,
                                    {avx2::batchnorm_forward_train_channel<float>,
                                     avx2::batchnorm_forward_infer_channel<float>,
                                     avx2::batchnorm_backward_channel<float>}};
  return kernels;
}

}  // namespace polytask::kernels::cpu
