// recperf `micro24-combined` variant: a replica of the MICRO'24 artifact's timed "combined" kernel,
// EmbeddingBag_updateOutputKernel_sum_mean in opt_designs/combined/EmbeddingBag.cu of
// github.com/rishucoding/reproduce_MICRO24_GPU_DLRM_inference (commit 3c1e9187, 2024-09-01), a
// modified PyTorch 2.1 EmbeddingBag.cu; and its L2 pinning pass prefetch_pin_L2 (same file).
//
// The lookup loop as published: the rows of a bag are loaded in pairs (`lv0 = row(emb)`,
// `lv1 = row(emb + 1)` when `ctr % 2 == 0`), then each iteration selects its value
// (`pad ? 0 : lv0/lv1`), counts the bag size and accumulates; so both loads of a pair are used
// before the next pair's index loads issue. The artifact builds it with -maxrregcount 42.
//
// Every difference from the artifact:
//   - plain C++ instead of ATen: acc_type<scalar_t, true> is float (fp32 accumulation, fp16
//     bits converted by cvt), ceil_div written out, CUDA_KERNEL_ASSERT as in recperf_common.cuh,
//     extern "C" entry points instead of a template, one build per table/index dtype;
//   - the register cap is a parameter, per kernel (__maxnreg__, RECPERF_REGISTER_CAP) instead of
//     -maxrregcount for the whole file; the artifact's 42 is register_cap = 42;
//   - bounds_check: "inline" keeps the artifact's in-loop CUDA_KERNEL_ASSERT(input[emb] < numRows);
//     "separate"/"none" remove it (the separate pass is kernels' recperf_check_indices);
//   - the artifact reads input[emb + 1] and its row even on a bag's last row of an odd-length bag
//     (the next bag's first row, or one index past the array after the last bag): the code is
//     kept, and the launchers give the index array one extra element (index 0) so that read
//     stays in bounds; on the CPU every row read is checked first (RECPERF_CPU_READ_CHECK);
//   - lv0 and lv1 start at 0 (uninitialized in the artifact; every use follows a write);
//   - the pinning pass takes the hot row ids as index_t (the artifact: int64 from a file) and
//     its launch (block (2, 128), grid 1024) is the launcher's; the artifact synchronizes the
//     stream after it and starts its timer after that, as kernels' launch sequence does.
#include "recperf_common.cuh"

#if RECPERF_ON_DEVICE && (RECPERF_PREFETCH_DISTANCE > 0 || RECPERF_PREFETCH_L2HINT)
#error "micro24-combined prefetches by its own pairs: no other prefetch"
#endif

__device__ __forceinline__ void recperf_micro24_body(
    const index_t* input, const index_t* offsets, const scalar_t* weight, scalar_t* output, index_t* offset2bag,
    recperf_i64 numIndices, recperf_i64 numBags, recperf_i64 featureSize, recperf_i64 weight_stride0,
    recperf_i64 weight_stride1, int mode, index_t* bag_size, const scalar_t* per_sample_weights,
    recperf_i64 per_sample_weights_stride, index_t padding_idx, recperf_i64 numRows) {
  // the strategy here is that each bag x feature is handled by a single thread
  typedef float accscalar_t;
  const recperf_i64 chunksPerBag = (featureSize + (recperf_i64)blockDim.x - 1) / (recperf_i64)blockDim.x;
  const recperf_i64 numChunks = numBags * chunksPerBag;
  const recperf_i64 chunkOffset = blockIdx.x * blockDim.y + threadIdx.y;
  const recperf_i64 chunkStride = gridDim.x * blockDim.y;

  for (recperf_i64 chunk = chunkOffset; chunk < numChunks; chunk += chunkStride) {
    recperf_i64 featureDim = (chunk % chunksPerBag) * blockDim.x + threadIdx.x;
    if (featureDim < featureSize) {
      recperf_i64 bag = chunk / chunksPerBag;
      const scalar_t* weightFeat = weight + featureDim * weight_stride1;
      recperf_i64 begin = bag == 0 ? 0 : offsets[bag];  // forces first offset to be 0 instead of asserting on it
      recperf_i64 end = (bag < numBags - 1) ? (offsets[bag + 1]) : numIndices;
      RECPERF_KERNEL_ASSERT(end >= begin);
      accscalar_t weightFeatSum = 0;
      recperf_i64 bag_size_ = 0;
      scalar_t lv0 = 0, lv1 = 0;  // temp registers to store the prefetch values
      int ctr = 0;
      for (recperf_i64 emb = begin; emb < end; emb++) {
        int ctr_mod;
        ctr_mod = ctr % 2;
        if (ctr_mod == 0) {
          RECPERF_CPU_READ_CHECK(input[emb], numRows, emb);
          recperf_i64 weightRow = static_cast<recperf_i64>(input[emb]) * weight_stride0;
          lv0 = weightFeat[weightRow];
          RECPERF_CPU_READ_CHECK(input[emb + 1], numRows, emb + 1);
          weightRow = static_cast<recperf_i64>(input[emb + 1]) * weight_stride0;
          lv1 = weightFeat[weightRow];
        }

        bool pad = (input[emb] == padding_idx);
#if RECPERF_BOUNDS_INLINE
        RECPERF_PYTORCH_INDEX_ASSERT(input[emb], numRows, emb);
#endif
        // (artifact) reshuffle independent instructions to create gap between load and use dependency.
        ctr++;
        bag_size_ += pad ? 0 : 1;
        if (featureDim == 0) {
          offset2bag[emb] = bag;
        }
        scalar_t weightValue = 0;
        switch (ctr_mod) {  // get the prefetched value
          case 0:
            weightValue = pad ? static_cast<scalar_t>(0) : lv0;
            break;
          case 1:
            weightValue = pad ? static_cast<scalar_t>(0) : lv1;
            break;
        }
        if (per_sample_weights) {
          accscalar_t scaleWeightBy = recperf_to_acc(per_sample_weights[emb * per_sample_weights_stride]);
          weightFeatSum += scaleWeightBy * recperf_to_acc(weightValue);
        } else {
          weightFeatSum += recperf_to_acc(weightValue);
        }
      }

      if (mode == RECPERF_MODE_MEAN) {
        if (bag_size_ != 0) {
          weightFeatSum = weightFeatSum / static_cast<accscalar_t>(bag_size_);
        }
      }
      bag_size[bag] = bag_size_;
      recperf_from_acc(&output[bag * featureSize + featureDim], weightFeatSum);
    }
  }
}

#define RECPERF_MICRO24_ENTRY(ATTR, SUFFIX)                                                                   \
  extern "C" __global__ void ATTR recperf_embedding_bag_micro24##SUFFIX(                                       \
      const index_t* input, const index_t* offsets, const scalar_t* weight, scalar_t* output,                  \
      index_t* offset2bag, recperf_i64 numIndices, recperf_i64 numBags, recperf_i64 featureSize,               \
      recperf_i64 weight_stride0, recperf_i64 weight_stride1, int mode, index_t* bag_size,                     \
      const scalar_t* per_sample_weights, recperf_i64 per_sample_weights_stride, index_t padding_idx,          \
      recperf_i64 numRows, int l2_prefetch_distance) {                                                         \
    (void)l2_prefetch_distance;                                                                                \
    recperf_micro24_body(input, offsets, weight, output, offset2bag, numIndices, numBags, featureSize,         \
                         weight_stride0, weight_stride1, mode, bag_size, per_sample_weights,                   \
                         per_sample_weights_stride, padding_idx, numRows);                                     \
  }
#define RECPERF_MICRO24_ENTRY_CAPPED(N) RECPERF_MICRO24_ENTRY(__maxnreg__(N), _cap##N)
RECPERF_ENTRIES(RECPERF_MICRO24_ENTRY)

// The artifact's pinning pass (prefetch_pin_L2): block (2, 128); thread (x, y) prefetches, for
// every hot row i it strides over, the element of column y with prefetch.global.L2::evict_last
// (so each 128-byte line of a row is hinted once per column it holds).
extern "C" __global__ void recperf_micro24_pin_L2(const scalar_t* weight, recperf_i64 featureSize,
                                                  recperf_i64 weight_stride0, const index_t* d_hot_idx_vec,
                                                  recperf_i64 pinning_size) {
  int Xidx = blockIdx.x * blockDim.x + threadIdx.x;
  int Yidx = threadIdx.y;
  int stride = gridDim.x * blockDim.x;

  if (Yidx < featureSize) {
    for (int i = Xidx; i < pinning_size; i += stride) {
      recperf_i64 const lv_hot_idx = d_hot_idx_vec[i];
      const scalar_t* weightFeat = weight + Yidx;
      recperf_prefetch_l2_evict_last(&weightFeat[lv_hot_idx * weight_stride0]);
    }
  }
}
