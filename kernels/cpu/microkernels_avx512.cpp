// The AVX-512 micro-kernels: 32 zmm registers. nn: 8 rows x 2 vectors (16 accumulators, two B
// vectors, one broadcast); nt: 4 x 6 dot products (24 accumulators, 4 A vectors, one B).
// Compiled with -mavx512f -mfma -ffp-contract=fast (kernels/CMakeLists.txt).
#define POLYTASK_MICROKERNEL_LANES 16
#define POLYTASK_MICROKERNEL_NAMESPACE avx512
#include "kernels/cpu/microkernels.h"
#include "kernels/cpu/pool_rows.h"
#include "kernels/cpu/batchnorm_channels.h"

namespace polytask::kernels::cpu {

const MicroKernels& avx512_micro_kernels() {
  static const MicroKernels kernels{CpuIsa::Avx512, 8, 32, 4, 6, 16,
                                    avx512::nn_tile<8, 2>, avx512::nt_tile<4, 6>,
                                    avx512::copy_row, avx512::add_row, avx512::fma_probe,
                                    {6, 64, avx512::gather_tile<6, 4>},
                                    {8, 32, avx512::gather_tile<8, 2>},
                                    avx512::max_pool_2x2_forward_plane,
                                    avx512::max_pool_2x2_backward_plane,
                                    {avx512::batchnorm_forward_train_channel<float>,
                                     avx512::batchnorm_forward_infer_channel<float>,
                                     avx512::batchnorm_backward_channel<float>}};
  return kernels;
}

}  // namespace polytask::kernels::cpu
