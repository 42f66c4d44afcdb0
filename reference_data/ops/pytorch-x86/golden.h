/*
 * Golden data written by npquant 0.1.0 (npquant.golden, format npquant-golden 2); manifest.json lists every file's sha256.
 * profile: pytorch-x86 version 1; seed: None; batch: None
 * provenance: git 11f82bc74550e271c694993543d9712f983c6df0 (dirty); python 3.11.7, numpy 2.4.6, numba 0.68.1
 * command: None
 * Quantized values: r = S (q - Z); input_offset = -input_zero_point, output_offset = +output_zero_point (CMSIS-NN).
 * Layouts: activations NCHW, conv weights OIHW, FC weights (O, I); C order.
 * Batch tensors (layout N...) hold the first 1 image(s); the npy, hex and bin files hold the whole batch.
 * Requantization: q_out = clamp(Z_out + round_rule(M[c] acc), ACT_MIN, ACT_MAX), M = M0 2^shift / 2^31.
 */
#ifndef NPQUANT_GOLDEN_PYTORCH_X86_H
#define NPQUANT_GOLDEN_PYTORCH_X86_H

#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define NPQ_ALIGN __attribute__((aligned(16)))
#else
#define NPQ_ALIGN
#endif

/* dtype codes of npq_tensor_t: 1 int8, 2 uint8, 3 int16, 4 uint16, 5 int32, 6 uint32, 7 float32, 8 float64, 9 int64, 10 uint64 */
typedef struct {
    const char *name;
    const void *data;
    int32_t dtype;
    int32_t ndim;
    const int32_t *shape;
    int64_t size;
} npq_tensor_t;

/* op 00 ties_half REQUANTIZE */
#define NPQ_00_TIES_HALF_ZERO_POINT 0
#define NPQ_00_TIES_HALF_QMIN -128
#define NPQ_00_TIES_HALF_QMAX 127

/* 00_ties_half.acc: int32 [33] vector, C order; */
#define NPQ_00_TIES_HALF_ACC_SIZE 33
static const int32_t npq_00_ties_half_acc_shape[] = {33};
static const int32_t npq_00_ties_half_acc[33] NPQ_ALIGN = {
        -16,         -15,         -14,         -13,         -12,         -11,         -10,          -9,          -8,          -7,          -6,          -5,          -4,          -3,          -2,          -1,
          0,           1,           2,           3,           4,           5,           6,           7,           8,           9,          10,          11,          12,          13,          14,          15,
         16,
};

/* 00_ties_half.requant_multiplier: int32 [1] O, C order; */
#define NPQ_00_TIES_HALF_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_00_ties_half_requant_multiplier_shape[] = {1};
static const int32_t npq_00_ties_half_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 00_ties_half.requant_shift: int32 [1] O, C order; */
#define NPQ_00_TIES_HALF_REQUANT_SHIFT_SIZE 1
static const int32_t npq_00_ties_half_requant_shift_shape[] = {1};
static const int32_t npq_00_ties_half_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 00_ties_half.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_00_TIES_HALF_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_00_ties_half_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_00_ties_half_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 00_ties_half.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_00_TIES_HALF_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_00_ties_half_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_00_ties_half_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3fe0000000000000U, 0x3ff0000000000000U,
};

/* 00_ties_half.output: int8 [33] vector, C order; */
#define NPQ_00_TIES_HALF_OUTPUT_SIZE 33
static const int32_t npq_00_ties_half_output_shape[] = {33};
static const int8_t npq_00_ties_half_output[33] NPQ_ALIGN = {
  -8,   -8,   -7,   -6,   -6,   -6,   -5,   -4,   -4,   -4,   -3,   -2,   -2,   -2,   -1,    0,
   0,    0,    1,    2,    2,    2,    3,    4,    4,    4,    5,    6,    6,    6,    7,    8,
   8,
};

/* op 01 ties_sixteenth REQUANTIZE */
#define NPQ_01_TIES_SIXTEENTH_ZERO_POINT 3
#define NPQ_01_TIES_SIXTEENTH_QMIN -128
#define NPQ_01_TIES_SIXTEENTH_QMAX 127

/* 01_ties_sixteenth.acc: int32 [33] vector, C order; */
#define NPQ_01_TIES_SIXTEENTH_ACC_SIZE 33
static const int32_t npq_01_ties_sixteenth_acc_shape[] = {33};
static const int32_t npq_01_ties_sixteenth_acc[33] NPQ_ALIGN = {
       -128,        -120,        -112,        -104,         -96,         -88,         -80,         -72,         -64,         -56,         -48,         -40,         -32,         -24,         -16,          -8,
          0,           8,          16,          24,          32,          40,          48,          56,          64,          72,          80,          88,          96,         104,         112,         120,
        128,
};

/* 01_ties_sixteenth.requant_multiplier: int32 [1] O, C order; */
#define NPQ_01_TIES_SIXTEENTH_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_01_ties_sixteenth_requant_multiplier_shape[] = {1};
static const int32_t npq_01_ties_sixteenth_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 01_ties_sixteenth.requant_shift: int32 [1] O, C order; */
#define NPQ_01_TIES_SIXTEENTH_REQUANT_SHIFT_SIZE 1
static const int32_t npq_01_ties_sixteenth_requant_shift_shape[] = {1};
static const int32_t npq_01_ties_sixteenth_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 01_ties_sixteenth.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_01_TIES_SIXTEENTH_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_01_ties_sixteenth_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_01_ties_sixteenth_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 01_ties_sixteenth.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_01_TIES_SIXTEENTH_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_01_ties_sixteenth_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_01_ties_sixteenth_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3fb0000000000000U, 0x3ff0000000000000U,
};

/* 01_ties_sixteenth.output: int8 [33] vector, C order; */
#define NPQ_01_TIES_SIXTEENTH_OUTPUT_SIZE 33
static const int32_t npq_01_ties_sixteenth_output_shape[] = {33};
static const int8_t npq_01_ties_sixteenth_output[33] NPQ_ALIGN = {
  -5,   -4,   -4,   -4,   -3,   -2,   -2,   -2,   -1,    0,    0,    0,    1,    2,    2,    2,
   3,    4,    4,    4,    5,    6,    6,    6,    7,    8,    8,    8,    9,   10,   10,   10,
  11,
};

/* op 02 saturation REQUANTIZE */
#define NPQ_02_SATURATION_ZERO_POINT -5
#define NPQ_02_SATURATION_QMIN -128
#define NPQ_02_SATURATION_QMAX 127

/* 02_saturation.acc: int32 [13] vector, C order; */
#define NPQ_02_SATURATION_ACC_SIZE 13
static const int32_t npq_02_saturation_acc_shape[] = {13};
static const int32_t npq_02_saturation_acc[13] NPQ_ALIGN = {
-2147483648, -2147483647, -1073741824,    -1000001,        -171,        -170,           0,         170,         171,     1000001,  1073741824,  2147483646,  2147483647,
};

/* 02_saturation.requant_multiplier: int32 [1] O, C order; */
#define NPQ_02_SATURATION_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_02_saturation_requant_multiplier_shape[] = {1};
static const int32_t npq_02_saturation_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 02_saturation.requant_shift: int32 [1] O, C order; */
#define NPQ_02_SATURATION_REQUANT_SHIFT_SIZE 1
static const int32_t npq_02_saturation_requant_shift_shape[] = {1};
static const int32_t npq_02_saturation_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 02_saturation.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_02_SATURATION_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_02_saturation_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_02_saturation_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 02_saturation.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_02_SATURATION_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_02_saturation_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_02_saturation_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3fe8000000000000U, 0x3ff0000000000000U,
};

/* 02_saturation.output: int8 [13] vector, C order; */
#define NPQ_02_SATURATION_OUTPUT_SIZE 13
static const int32_t npq_02_saturation_output_shape[] = {13};
static const int8_t npq_02_saturation_output[13] NPQ_ALIGN = {
-128, -128, -128, -128, -128, -128,   -5,  122,  123,  127,  127,  127,  127,
};

/* op 03 int32_edges_max_q31 REQUANTIZE */
#define NPQ_03_INT32_EDGES_MAX_Q31_ZERO_POINT 0
#define NPQ_03_INT32_EDGES_MAX_Q31_QMIN -128
#define NPQ_03_INT32_EDGES_MAX_Q31_QMAX 127

/* 03_int32_edges_max_q31.acc: int32 [13] vector, C order; */
#define NPQ_03_INT32_EDGES_MAX_Q31_ACC_SIZE 13
static const int32_t npq_03_int32_edges_max_q31_acc_shape[] = {13};
static const int32_t npq_03_int32_edges_max_q31_acc[13] NPQ_ALIGN = {
-2147483648, -2147483647, -1073741824,    -1000001,        -171,        -170,           0,         170,         171,     1000001,  1073741824,  2147483646,  2147483647,
};

/* 03_int32_edges_max_q31.requant_multiplier: int32 [1] O, C order; */
#define NPQ_03_INT32_EDGES_MAX_Q31_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_03_int32_edges_max_q31_requant_multiplier_shape[] = {1};
static const int32_t npq_03_int32_edges_max_q31_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 03_int32_edges_max_q31.requant_shift: int32 [1] O, C order; */
#define NPQ_03_INT32_EDGES_MAX_Q31_REQUANT_SHIFT_SIZE 1
static const int32_t npq_03_int32_edges_max_q31_requant_shift_shape[] = {1};
static const int32_t npq_03_int32_edges_max_q31_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 03_int32_edges_max_q31.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_03_INT32_EDGES_MAX_Q31_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_03_int32_edges_max_q31_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_03_int32_edges_max_q31_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 03_int32_edges_max_q31.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_03_INT32_EDGES_MAX_Q31_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_03_int32_edges_max_q31_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_03_int32_edges_max_q31_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3ff0000000000000U, 0x3ff0000000000000U,
};

/* 03_int32_edges_max_q31.output: int8 [13] vector, C order; */
#define NPQ_03_INT32_EDGES_MAX_Q31_OUTPUT_SIZE 13
static const int32_t npq_03_int32_edges_max_q31_output_shape[] = {13};
static const int8_t npq_03_int32_edges_max_q31_output[13] NPQ_ALIGN = {
-128, -128, -128, -128, -128, -128,    0,  127,  127,  127,  127,  127,  127,
};

/* op 04 int32_edges_tiny_m REQUANTIZE */
#define NPQ_04_INT32_EDGES_TINY_M_ZERO_POINT 0
#define NPQ_04_INT32_EDGES_TINY_M_QMIN -128
#define NPQ_04_INT32_EDGES_TINY_M_QMAX 127

/* 04_int32_edges_tiny_m.acc: int32 [13] vector, C order; */
#define NPQ_04_INT32_EDGES_TINY_M_ACC_SIZE 13
static const int32_t npq_04_int32_edges_tiny_m_acc_shape[] = {13};
static const int32_t npq_04_int32_edges_tiny_m_acc[13] NPQ_ALIGN = {
-2147483648, -2147483647, -1073741824,    -1000001,        -171,        -170,           0,         170,         171,     1000001,  1073741824,  2147483646,  2147483647,
};

/* 04_int32_edges_tiny_m.requant_multiplier: int32 [1] O, C order; */
#define NPQ_04_INT32_EDGES_TINY_M_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_04_int32_edges_tiny_m_requant_multiplier_shape[] = {1};
static const int32_t npq_04_int32_edges_tiny_m_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 04_int32_edges_tiny_m.requant_shift: int32 [1] O, C order; */
#define NPQ_04_INT32_EDGES_TINY_M_REQUANT_SHIFT_SIZE 1
static const int32_t npq_04_int32_edges_tiny_m_requant_shift_shape[] = {1};
static const int32_t npq_04_int32_edges_tiny_m_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 04_int32_edges_tiny_m.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_04_INT32_EDGES_TINY_M_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_04_int32_edges_tiny_m_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_04_int32_edges_tiny_m_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 04_int32_edges_tiny_m.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_04_INT32_EDGES_TINY_M_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_04_int32_edges_tiny_m_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_04_int32_edges_tiny_m_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3e06666660000000U, 0x3ff0000000000000U,
};

/* 04_int32_edges_tiny_m.output: int8 [13] vector, C order; */
#define NPQ_04_INT32_EDGES_TINY_M_OUTPUT_SIZE 13
static const int32_t npq_04_int32_edges_tiny_m_output_shape[] = {13};
static const int8_t npq_04_int32_edges_tiny_m_output[13] NPQ_ALIGN = {
  -1,   -1,   -1,    0,    0,    0,    0,    0,    0,    0,    1,    1,    1,
};

/* op 05 int32_min_tie REQUANTIZE */
#define NPQ_05_INT32_MIN_TIE_ZERO_POINT 0
#define NPQ_05_INT32_MIN_TIE_QMIN -128
#define NPQ_05_INT32_MIN_TIE_QMAX 127

/* 05_int32_min_tie.acc: int32 [13] vector, C order; */
#define NPQ_05_INT32_MIN_TIE_ACC_SIZE 13
static const int32_t npq_05_int32_min_tie_acc_shape[] = {13};
static const int32_t npq_05_int32_min_tie_acc[13] NPQ_ALIGN = {
-2147483648, -2147483647, -1073741824,    -1000001,        -171,        -170,           0,         170,         171,     1000001,  1073741824,  2147483646,  2147483647,
};

/* 05_int32_min_tie.requant_multiplier: int32 [1] O, C order; */
#define NPQ_05_INT32_MIN_TIE_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_05_int32_min_tie_requant_multiplier_shape[] = {1};
static const int32_t npq_05_int32_min_tie_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 05_int32_min_tie.requant_shift: int32 [1] O, C order; */
#define NPQ_05_INT32_MIN_TIE_REQUANT_SHIFT_SIZE 1
static const int32_t npq_05_int32_min_tie_requant_shift_shape[] = {1};
static const int32_t npq_05_int32_min_tie_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 05_int32_min_tie.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_05_INT32_MIN_TIE_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_05_int32_min_tie_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_05_int32_min_tie_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 05_int32_min_tie.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_05_INT32_MIN_TIE_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_05_int32_min_tie_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_05_int32_min_tie_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3df0000000000000U, 0x3ff0000000000000U,
};

/* 05_int32_min_tie.output: int8 [13] vector, C order; */
#define NPQ_05_INT32_MIN_TIE_OUTPUT_SIZE 13
static const int32_t npq_05_int32_min_tie_output_shape[] = {13};
static const int8_t npq_05_int32_min_tie_output[13] NPQ_ALIGN = {
   0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
};

/* op 06 zero_point_min_relu REQUANTIZE */
#define NPQ_06_ZERO_POINT_MIN_RELU_ZERO_POINT -128
#define NPQ_06_ZERO_POINT_MIN_RELU_QMIN -128
#define NPQ_06_ZERO_POINT_MIN_RELU_QMAX 127

/* 06_zero_point_min_relu.acc: int32 [25] vector, C order; */
#define NPQ_06_ZERO_POINT_MIN_RELU_ACC_SIZE 25
static const int32_t npq_06_zero_point_min_relu_acc_shape[] = {25};
static const int32_t npq_06_zero_point_min_relu_acc[25] NPQ_ALIGN = {
       -600,        -550,        -500,        -450,        -400,        -350,        -300,        -250,        -200,        -150,        -100,         -50,           0,          50,         100,         150,
        200,         250,         300,         350,         400,         450,         500,         550,         600,
};

/* 06_zero_point_min_relu.requant_multiplier: int32 [1] O, C order; */
#define NPQ_06_ZERO_POINT_MIN_RELU_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_06_zero_point_min_relu_requant_multiplier_shape[] = {1};
static const int32_t npq_06_zero_point_min_relu_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 06_zero_point_min_relu.requant_shift: int32 [1] O, C order; */
#define NPQ_06_ZERO_POINT_MIN_RELU_REQUANT_SHIFT_SIZE 1
static const int32_t npq_06_zero_point_min_relu_requant_shift_shape[] = {1};
static const int32_t npq_06_zero_point_min_relu_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 06_zero_point_min_relu.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_06_ZERO_POINT_MIN_RELU_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_06_zero_point_min_relu_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_06_zero_point_min_relu_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 06_zero_point_min_relu.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_06_ZERO_POINT_MIN_RELU_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_06_zero_point_min_relu_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_06_zero_point_min_relu_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3fd3333340000000U, 0x3ff0000000000000U,
};

/* 06_zero_point_min_relu.output: int8 [25] vector, C order; */
#define NPQ_06_ZERO_POINT_MIN_RELU_OUTPUT_SIZE 25
static const int32_t npq_06_zero_point_min_relu_output_shape[] = {25};
static const int8_t npq_06_zero_point_min_relu_output[25] NPQ_ALIGN = {
-128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -113,  -98,  -83,
 -68,  -53,  -38,  -23,   -8,    7,   22,   37,   52,
};

/* op 07 zero_point_max REQUANTIZE */
#define NPQ_07_ZERO_POINT_MAX_ZERO_POINT 127
#define NPQ_07_ZERO_POINT_MAX_QMIN -128
#define NPQ_07_ZERO_POINT_MAX_QMAX 127

/* 07_zero_point_max.acc: int32 [25] vector, C order; */
#define NPQ_07_ZERO_POINT_MAX_ACC_SIZE 25
static const int32_t npq_07_zero_point_max_acc_shape[] = {25};
static const int32_t npq_07_zero_point_max_acc[25] NPQ_ALIGN = {
       -600,        -550,        -500,        -450,        -400,        -350,        -300,        -250,        -200,        -150,        -100,         -50,           0,          50,         100,         150,
        200,         250,         300,         350,         400,         450,         500,         550,         600,
};

/* 07_zero_point_max.requant_multiplier: int32 [1] O, C order; */
#define NPQ_07_ZERO_POINT_MAX_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_07_zero_point_max_requant_multiplier_shape[] = {1};
static const int32_t npq_07_zero_point_max_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 07_zero_point_max.requant_shift: int32 [1] O, C order; */
#define NPQ_07_ZERO_POINT_MAX_REQUANT_SHIFT_SIZE 1
static const int32_t npq_07_zero_point_max_requant_shift_shape[] = {1};
static const int32_t npq_07_zero_point_max_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 07_zero_point_max.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_07_ZERO_POINT_MAX_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_07_zero_point_max_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_07_zero_point_max_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 07_zero_point_max.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_07_ZERO_POINT_MAX_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_07_zero_point_max_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_07_zero_point_max_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3fd3333340000000U, 0x3ff0000000000000U,
};

/* 07_zero_point_max.output: int8 [25] vector, C order; */
#define NPQ_07_ZERO_POINT_MAX_OUTPUT_SIZE 25
static const int32_t npq_07_zero_point_max_output_shape[] = {25};
static const int8_t npq_07_zero_point_max_output[25] NPQ_ALIGN = {
 -53,  -38,  -23,   -8,    7,   22,   37,   52,   67,   82,   97,  112,  127,  127,  127,  127,
 127,  127,  127,  127,  127,  127,  127,  127,  127,
};

/* op 08 int4 REQUANTIZE */
#define NPQ_08_INT4_ZERO_POINT -3
#define NPQ_08_INT4_QMIN -8
#define NPQ_08_INT4_QMAX 7

/* 08_int4.acc: int32 [51] vector, C order; */
#define NPQ_08_INT4_ACC_SIZE 51
static const int32_t npq_08_int4_acc_shape[] = {51};
static const int32_t npq_08_int4_acc[51] NPQ_ALIGN = {
       -250,        -240,        -230,        -220,        -210,        -200,        -190,        -180,        -170,        -160,        -150,        -140,        -130,        -120,        -110,        -100,
        -90,         -80,         -70,         -60,         -50,         -40,         -30,         -20,         -10,           0,          10,          20,          30,          40,          50,          60,
         70,          80,          90,         100,         110,         120,         130,         140,         150,         160,         170,         180,         190,         200,         210,         220,
        230,         240,         250,
};

/* 08_int4.requant_multiplier: int32 [1] O, C order; */
#define NPQ_08_INT4_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_08_int4_requant_multiplier_shape[] = {1};
static const int32_t npq_08_int4_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 08_int4.requant_shift: int32 [1] O, C order; */
#define NPQ_08_INT4_REQUANT_SHIFT_SIZE 1
static const int32_t npq_08_int4_requant_shift_shape[] = {1};
static const int32_t npq_08_int4_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 08_int4.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_08_INT4_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_08_int4_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_08_int4_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 08_int4.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_08_INT4_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_08_int4_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_08_int4_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3fa99999a0000000U, 0x3ff0000000000000U,
};

/* 08_int4.output: int8 [51] vector, C order; */
#define NPQ_08_INT4_OUTPUT_SIZE 51
static const int32_t npq_08_int4_output_shape[] = {51};
static const int8_t npq_08_int4_output[51] NPQ_ALIGN = {
  -8,   -8,   -8,   -8,   -8,   -8,   -8,   -8,   -8,   -8,   -8,   -8,   -8,   -8,   -8,   -8,
  -8,   -7,   -6,   -6,   -6,   -5,   -4,   -4,   -4,   -3,   -2,   -2,   -2,   -1,    0,    0,
   0,    1,    2,    2,    2,    3,    4,    4,    4,    5,    6,    6,    6,    7,    7,    7,
   7,    7,    7,
};

/* op 09 int16 REQUANTIZE */
#define NPQ_09_INT16_ZERO_POINT 0
#define NPQ_09_INT16_QMIN -32768
#define NPQ_09_INT16_QMAX 32767

/* 09_int16.acc: int32 [46] vector, C order; */
#define NPQ_09_INT16_ACC_SIZE 46
static const int32_t npq_09_int16_acc_shape[] = {46};
static const int32_t npq_09_int16_acc[46] NPQ_ALIGN = {
-2147483648, -2147483647, -1073741824,    -1000001,        -171,        -170,           0,         170,         171,     1000001,  1073741824,  2147483646,  2147483647,         -48,         -45,         -42,
        -39,         -36,         -33,         -30,         -27,         -24,         -21,         -18,         -15,         -12,          -9,          -6,          -3,           0,           3,           6,
          9,          12,          15,          18,          21,          24,          27,          30,          33,          36,          39,          42,          45,          48,
};

/* 09_int16.requant_multiplier: int32 [1] O, C order; */
#define NPQ_09_INT16_REQUANT_MULTIPLIER_SIZE 1
static const int32_t npq_09_int16_requant_multiplier_shape[] = {1};
static const int32_t npq_09_int16_requant_multiplier[1] NPQ_ALIGN = {
          0,
};

/* 09_int16.requant_shift: int32 [1] O, C order; */
#define NPQ_09_INT16_REQUANT_SHIFT_SIZE 1
static const int32_t npq_09_int16_requant_shift_shape[] = {1};
static const int32_t npq_09_int16_requant_shift[1] NPQ_ALIGN = {
          0,
};

/* 09_int16.requant_real_multiplier: float64 [1] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_09_INT16_REQUANT_REAL_MULTIPLIER_SIZE 1
static const int32_t npq_09_int16_requant_real_multiplier_shape[] = {1};
static const uint64_t npq_09_int16_requant_real_multiplier_bits[1] NPQ_ALIGN = {
0x3ff0000000000000U,
};

/* 09_int16.requant_onednn_src_d: float64 [2] O, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_09_INT16_REQUANT_ONEDNN_SRC_D_SIZE 2
static const int32_t npq_09_int16_requant_onednn_src_d_shape[] = {2};
static const uint64_t npq_09_int16_requant_onednn_src_d_bits[2] NPQ_ALIGN = {
0x3fd7ae1480000000U, 0x3ff0000000000000U,
};

/* 09_int16.output: int16 [46] vector, C order; */
#define NPQ_09_INT16_OUTPUT_SIZE 46
static const int32_t npq_09_int16_output_shape[] = {46};
static const int16_t npq_09_int16_output[46] NPQ_ALIGN = {
-32768, -32768, -32768, -32768,    -63,    -63,      0,     63,     63,  32767,  32767,  32767,  32767,    -18,    -17,    -16,
   -14,    -13,    -12,    -11,    -10,     -9,     -8,     -7,     -6,     -4,     -3,     -2,     -1,      0,      1,      2,
     3,      4,      6,      7,      8,      9,     10,     11,     12,     13,     14,     16,     17,     18,
};

/* op 10 quantize_ties QUANTIZE */
#define NPQ_10_QUANTIZE_TIES_ZERO_POINT -1
#define NPQ_10_QUANTIZE_TIES_QMIN -128
#define NPQ_10_QUANTIZE_TIES_QMAX 127

/* 10_quantize_ties.input: float32 [17] vector, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_10_QUANTIZE_TIES_INPUT_SIZE 17
static const int32_t npq_10_quantize_ties_input_shape[] = {17};
static const uint32_t npq_10_quantize_ties_input_bits[17] NPQ_ALIGN = {
0xc0000000U, 0xbfe00000U, 0xbfc00000U, 0xbfa00000U, 0xbf800000U, 0xbf400000U, 0xbf000000U, 0xbe800000U, 0x00000000U, 0x3e800000U, 0x3f000000U, 0x3f400000U, 0x3f800000U, 0x3fa00000U, 0x3fc00000U, 0x3fe00000U,
0x40000000U,
};

/* 10_quantize_ties.scale: float32 [1] scalar, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_10_QUANTIZE_TIES_SCALE_SIZE 1
static const int32_t npq_10_quantize_ties_scale_shape[] = {1};
static const uint32_t npq_10_quantize_ties_scale_bits[1] NPQ_ALIGN = {
0x3f000000U,
};

/* 10_quantize_ties.output: int8 [17] vector, C order; */
#define NPQ_10_QUANTIZE_TIES_OUTPUT_SIZE 17
static const int32_t npq_10_quantize_ties_output_shape[] = {17};
static const int8_t npq_10_quantize_ties_output[17] NPQ_ALIGN = {
  -5,   -4,   -4,   -4,   -3,   -2,   -2,   -2,   -1,    0,    0,    0,    1,    2,    2,    2,
   3,
};

/* op 11 quantize_saturation_uint8 QUANTIZE */
#define NPQ_11_QUANTIZE_SATURATION_UINT8_ZERO_POINT 200
#define NPQ_11_QUANTIZE_SATURATION_UINT8_QMIN 0
#define NPQ_11_QUANTIZE_SATURATION_UINT8_QMAX 255

/* 11_quantize_saturation_uint8.input: float32 [7] vector, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_11_QUANTIZE_SATURATION_UINT8_INPUT_SIZE 7
static const int32_t npq_11_quantize_saturation_uint8_input_shape[] = {7};
static const uint32_t npq_11_quantize_saturation_uint8_input_bits[7] NPQ_ALIGN = {
0xc2c80000U, 0xc1a06666U, 0xc1a00000U, 0x00000000U, 0x40b1999aU, 0x40b33333U, 0x42c80000U,
};

/* 11_quantize_saturation_uint8.scale: float32 [1] scalar, C order; IEEE-754 bit patterns (memcpy into a float) */
#define NPQ_11_QUANTIZE_SATURATION_UINT8_SCALE_SIZE 1
static const int32_t npq_11_quantize_saturation_uint8_scale_shape[] = {1};
static const uint32_t npq_11_quantize_saturation_uint8_scale_bits[1] NPQ_ALIGN = {
0x3dcccccdU,
};

/* 11_quantize_saturation_uint8.output: uint8 [7] vector, C order; */
#define NPQ_11_QUANTIZE_SATURATION_UINT8_OUTPUT_SIZE 7
static const int32_t npq_11_quantize_saturation_uint8_output_shape[] = {7};
static const uint8_t npq_11_quantize_saturation_uint8_output[7] NPQ_ALIGN = {
   0,    0,    0,  200,  255,  255,  255,
};

#define NPQ_NUM_TENSORS 66
static const npq_tensor_t npq_tensors[] = {
    {"00_ties_half.acc", npq_00_ties_half_acc, 5, 1, npq_00_ties_half_acc_shape, NPQ_00_TIES_HALF_ACC_SIZE},
    {"00_ties_half.requant_multiplier", npq_00_ties_half_requant_multiplier, 5, 1, npq_00_ties_half_requant_multiplier_shape, NPQ_00_TIES_HALF_REQUANT_MULTIPLIER_SIZE},
    {"00_ties_half.requant_shift", npq_00_ties_half_requant_shift, 5, 1, npq_00_ties_half_requant_shift_shape, NPQ_00_TIES_HALF_REQUANT_SHIFT_SIZE},
    {"00_ties_half.requant_real_multiplier", npq_00_ties_half_requant_real_multiplier_bits, 8, 1, npq_00_ties_half_requant_real_multiplier_shape, NPQ_00_TIES_HALF_REQUANT_REAL_MULTIPLIER_SIZE},
    {"00_ties_half.requant_onednn_src_d", npq_00_ties_half_requant_onednn_src_d_bits, 8, 1, npq_00_ties_half_requant_onednn_src_d_shape, NPQ_00_TIES_HALF_REQUANT_ONEDNN_SRC_D_SIZE},
    {"00_ties_half.output", npq_00_ties_half_output, 1, 1, npq_00_ties_half_output_shape, NPQ_00_TIES_HALF_OUTPUT_SIZE},
    {"01_ties_sixteenth.acc", npq_01_ties_sixteenth_acc, 5, 1, npq_01_ties_sixteenth_acc_shape, NPQ_01_TIES_SIXTEENTH_ACC_SIZE},
    {"01_ties_sixteenth.requant_multiplier", npq_01_ties_sixteenth_requant_multiplier, 5, 1, npq_01_ties_sixteenth_requant_multiplier_shape, NPQ_01_TIES_SIXTEENTH_REQUANT_MULTIPLIER_SIZE},
    {"01_ties_sixteenth.requant_shift", npq_01_ties_sixteenth_requant_shift, 5, 1, npq_01_ties_sixteenth_requant_shift_shape, NPQ_01_TIES_SIXTEENTH_REQUANT_SHIFT_SIZE},
    {"01_ties_sixteenth.requant_real_multiplier", npq_01_ties_sixteenth_requant_real_multiplier_bits, 8, 1, npq_01_ties_sixteenth_requant_real_multiplier_shape, NPQ_01_TIES_SIXTEENTH_REQUANT_REAL_MULTIPLIER_SIZE},
    {"01_ties_sixteenth.requant_onednn_src_d", npq_01_ties_sixteenth_requant_onednn_src_d_bits, 8, 1, npq_01_ties_sixteenth_requant_onednn_src_d_shape, NPQ_01_TIES_SIXTEENTH_REQUANT_ONEDNN_SRC_D_SIZE},
    {"01_ties_sixteenth.output", npq_01_ties_sixteenth_output, 1, 1, npq_01_ties_sixteenth_output_shape, NPQ_01_TIES_SIXTEENTH_OUTPUT_SIZE},
    {"02_saturation.acc", npq_02_saturation_acc, 5, 1, npq_02_saturation_acc_shape, NPQ_02_SATURATION_ACC_SIZE},
    {"02_saturation.requant_multiplier", npq_02_saturation_requant_multiplier, 5, 1, npq_02_saturation_requant_multiplier_shape, NPQ_02_SATURATION_REQUANT_MULTIPLIER_SIZE},
    {"02_saturation.requant_shift", npq_02_saturation_requant_shift, 5, 1, npq_02_saturation_requant_shift_shape, NPQ_02_SATURATION_REQUANT_SHIFT_SIZE},
    {"02_saturation.requant_real_multiplier", npq_02_saturation_requant_real_multiplier_bits, 8, 1, npq_02_saturation_requant_real_multiplier_shape, NPQ_02_SATURATION_REQUANT_REAL_MULTIPLIER_SIZE},
    {"02_saturation.requant_onednn_src_d", npq_02_saturation_requant_onednn_src_d_bits, 8, 1, npq_02_saturation_requant_onednn_src_d_shape, NPQ_02_SATURATION_REQUANT_ONEDNN_SRC_D_SIZE},
    {"02_saturation.output", npq_02_saturation_output, 1, 1, npq_02_saturation_output_shape, NPQ_02_SATURATION_OUTPUT_SIZE},
    {"03_int32_edges_max_q31.acc", npq_03_int32_edges_max_q31_acc, 5, 1, npq_03_int32_edges_max_q31_acc_shape, NPQ_03_INT32_EDGES_MAX_Q31_ACC_SIZE},
    {"03_int32_edges_max_q31.requant_multiplier", npq_03_int32_edges_max_q31_requant_multiplier, 5, 1, npq_03_int32_edges_max_q31_requant_multiplier_shape, NPQ_03_INT32_EDGES_MAX_Q31_REQUANT_MULTIPLIER_SIZE},
    {"03_int32_edges_max_q31.requant_shift", npq_03_int32_edges_max_q31_requant_shift, 5, 1, npq_03_int32_edges_max_q31_requant_shift_shape, NPQ_03_INT32_EDGES_MAX_Q31_REQUANT_SHIFT_SIZE},
    {"03_int32_edges_max_q31.requant_real_multiplier", npq_03_int32_edges_max_q31_requant_real_multiplier_bits, 8, 1, npq_03_int32_edges_max_q31_requant_real_multiplier_shape, NPQ_03_INT32_EDGES_MAX_Q31_REQUANT_REAL_MULTIPLIER_SIZE},
    {"03_int32_edges_max_q31.requant_onednn_src_d", npq_03_int32_edges_max_q31_requant_onednn_src_d_bits, 8, 1, npq_03_int32_edges_max_q31_requant_onednn_src_d_shape, NPQ_03_INT32_EDGES_MAX_Q31_REQUANT_ONEDNN_SRC_D_SIZE},
    {"03_int32_edges_max_q31.output", npq_03_int32_edges_max_q31_output, 1, 1, npq_03_int32_edges_max_q31_output_shape, NPQ_03_INT32_EDGES_MAX_Q31_OUTPUT_SIZE},
    {"04_int32_edges_tiny_m.acc", npq_04_int32_edges_tiny_m_acc, 5, 1, npq_04_int32_edges_tiny_m_acc_shape, NPQ_04_INT32_EDGES_TINY_M_ACC_SIZE},
    {"04_int32_edges_tiny_m.requant_multiplier", npq_04_int32_edges_tiny_m_requant_multiplier, 5, 1, npq_04_int32_edges_tiny_m_requant_multiplier_shape, NPQ_04_INT32_EDGES_TINY_M_REQUANT_MULTIPLIER_SIZE},
    {"04_int32_edges_tiny_m.requant_shift", npq_04_int32_edges_tiny_m_requant_shift, 5, 1, npq_04_int32_edges_tiny_m_requant_shift_shape, NPQ_04_INT32_EDGES_TINY_M_REQUANT_SHIFT_SIZE},
    {"04_int32_edges_tiny_m.requant_real_multiplier", npq_04_int32_edges_tiny_m_requant_real_multiplier_bits, 8, 1, npq_04_int32_edges_tiny_m_requant_real_multiplier_shape, NPQ_04_INT32_EDGES_TINY_M_REQUANT_REAL_MULTIPLIER_SIZE},
    {"04_int32_edges_tiny_m.requant_onednn_src_d", npq_04_int32_edges_tiny_m_requant_onednn_src_d_bits, 8, 1, npq_04_int32_edges_tiny_m_requant_onednn_src_d_shape, NPQ_04_INT32_EDGES_TINY_M_REQUANT_ONEDNN_SRC_D_SIZE},
    {"04_int32_edges_tiny_m.output", npq_04_int32_edges_tiny_m_output, 1, 1, npq_04_int32_edges_tiny_m_output_shape, NPQ_04_INT32_EDGES_TINY_M_OUTPUT_SIZE},
    {"05_int32_min_tie.acc", npq_05_int32_min_tie_acc, 5, 1, npq_05_int32_min_tie_acc_shape, NPQ_05_INT32_MIN_TIE_ACC_SIZE},
    {"05_int32_min_tie.requant_multiplier", npq_05_int32_min_tie_requant_multiplier, 5, 1, npq_05_int32_min_tie_requant_multiplier_shape, NPQ_05_INT32_MIN_TIE_REQUANT_MULTIPLIER_SIZE},
    {"05_int32_min_tie.requant_shift", npq_05_int32_min_tie_requant_shift, 5, 1, npq_05_int32_min_tie_requant_shift_shape, NPQ_05_INT32_MIN_TIE_REQUANT_SHIFT_SIZE},
    {"05_int32_min_tie.requant_real_multiplier", npq_05_int32_min_tie_requant_real_multiplier_bits, 8, 1, npq_05_int32_min_tie_requant_real_multiplier_shape, NPQ_05_INT32_MIN_TIE_REQUANT_REAL_MULTIPLIER_SIZE},
    {"05_int32_min_tie.requant_onednn_src_d", npq_05_int32_min_tie_requant_onednn_src_d_bits, 8, 1, npq_05_int32_min_tie_requant_onednn_src_d_shape, NPQ_05_INT32_MIN_TIE_REQUANT_ONEDNN_SRC_D_SIZE},
    {"05_int32_min_tie.output", npq_05_int32_min_tie_output, 1, 1, npq_05_int32_min_tie_output_shape, NPQ_05_INT32_MIN_TIE_OUTPUT_SIZE},
    {"06_zero_point_min_relu.acc", npq_06_zero_point_min_relu_acc, 5, 1, npq_06_zero_point_min_relu_acc_shape, NPQ_06_ZERO_POINT_MIN_RELU_ACC_SIZE},
    {"06_zero_point_min_relu.requant_multiplier", npq_06_zero_point_min_relu_requant_multiplier, 5, 1, npq_06_zero_point_min_relu_requant_multiplier_shape, NPQ_06_ZERO_POINT_MIN_RELU_REQUANT_MULTIPLIER_SIZE},
    {"06_zero_point_min_relu.requant_shift", npq_06_zero_point_min_relu_requant_shift, 5, 1, npq_06_zero_point_min_relu_requant_shift_shape, NPQ_06_ZERO_POINT_MIN_RELU_REQUANT_SHIFT_SIZE},
    {"06_zero_point_min_relu.requant_real_multiplier", npq_06_zero_point_min_relu_requant_real_multiplier_bits, 8, 1, npq_06_zero_point_min_relu_requant_real_multiplier_shape, NPQ_06_ZERO_POINT_MIN_RELU_REQUANT_REAL_MULTIPLIER_SIZE},
    {"06_zero_point_min_relu.requant_onednn_src_d", npq_06_zero_point_min_relu_requant_onednn_src_d_bits, 8, 1, npq_06_zero_point_min_relu_requant_onednn_src_d_shape, NPQ_06_ZERO_POINT_MIN_RELU_REQUANT_ONEDNN_SRC_D_SIZE},
    {"06_zero_point_min_relu.output", npq_06_zero_point_min_relu_output, 1, 1, npq_06_zero_point_min_relu_output_shape, NPQ_06_ZERO_POINT_MIN_RELU_OUTPUT_SIZE},
    {"07_zero_point_max.acc", npq_07_zero_point_max_acc, 5, 1, npq_07_zero_point_max_acc_shape, NPQ_07_ZERO_POINT_MAX_ACC_SIZE},
    {"07_zero_point_max.requant_multiplier", npq_07_zero_point_max_requant_multiplier, 5, 1, npq_07_zero_point_max_requant_multiplier_shape, NPQ_07_ZERO_POINT_MAX_REQUANT_MULTIPLIER_SIZE},
    {"07_zero_point_max.requant_shift", npq_07_zero_point_max_requant_shift, 5, 1, npq_07_zero_point_max_requant_shift_shape, NPQ_07_ZERO_POINT_MAX_REQUANT_SHIFT_SIZE},
    {"07_zero_point_max.requant_real_multiplier", npq_07_zero_point_max_requant_real_multiplier_bits, 8, 1, npq_07_zero_point_max_requant_real_multiplier_shape, NPQ_07_ZERO_POINT_MAX_REQUANT_REAL_MULTIPLIER_SIZE},
    {"07_zero_point_max.requant_onednn_src_d", npq_07_zero_point_max_requant_onednn_src_d_bits, 8, 1, npq_07_zero_point_max_requant_onednn_src_d_shape, NPQ_07_ZERO_POINT_MAX_REQUANT_ONEDNN_SRC_D_SIZE},
    {"07_zero_point_max.output", npq_07_zero_point_max_output, 1, 1, npq_07_zero_point_max_output_shape, NPQ_07_ZERO_POINT_MAX_OUTPUT_SIZE},
    {"08_int4.acc", npq_08_int4_acc, 5, 1, npq_08_int4_acc_shape, NPQ_08_INT4_ACC_SIZE},
    {"08_int4.requant_multiplier", npq_08_int4_requant_multiplier, 5, 1, npq_08_int4_requant_multiplier_shape, NPQ_08_INT4_REQUANT_MULTIPLIER_SIZE},
    {"08_int4.requant_shift", npq_08_int4_requant_shift, 5, 1, npq_08_int4_requant_shift_shape, NPQ_08_INT4_REQUANT_SHIFT_SIZE},
    {"08_int4.requant_real_multiplier", npq_08_int4_requant_real_multiplier_bits, 8, 1, npq_08_int4_requant_real_multiplier_shape, NPQ_08_INT4_REQUANT_REAL_MULTIPLIER_SIZE},
    {"08_int4.requant_onednn_src_d", npq_08_int4_requant_onednn_src_d_bits, 8, 1, npq_08_int4_requant_onednn_src_d_shape, NPQ_08_INT4_REQUANT_ONEDNN_SRC_D_SIZE},
    {"08_int4.output", npq_08_int4_output, 1, 1, npq_08_int4_output_shape, NPQ_08_INT4_OUTPUT_SIZE},
    {"09_int16.acc", npq_09_int16_acc, 5, 1, npq_09_int16_acc_shape, NPQ_09_INT16_ACC_SIZE},
    {"09_int16.requant_multiplier", npq_09_int16_requant_multiplier, 5, 1, npq_09_int16_requant_multiplier_shape, NPQ_09_INT16_REQUANT_MULTIPLIER_SIZE},
    {"09_int16.requant_shift", npq_09_int16_requant_shift, 5, 1, npq_09_int16_requant_shift_shape, NPQ_09_INT16_REQUANT_SHIFT_SIZE},
    {"09_int16.requant_real_multiplier", npq_09_int16_requant_real_multiplier_bits, 8, 1, npq_09_int16_requant_real_multiplier_shape, NPQ_09_INT16_REQUANT_REAL_MULTIPLIER_SIZE},
    {"09_int16.requant_onednn_src_d", npq_09_int16_requant_onednn_src_d_bits, 8, 1, npq_09_int16_requant_onednn_src_d_shape, NPQ_09_INT16_REQUANT_ONEDNN_SRC_D_SIZE},
    {"09_int16.output", npq_09_int16_output, 3, 1, npq_09_int16_output_shape, NPQ_09_INT16_OUTPUT_SIZE},
    {"10_quantize_ties.input", npq_10_quantize_ties_input_bits, 7, 1, npq_10_quantize_ties_input_shape, NPQ_10_QUANTIZE_TIES_INPUT_SIZE},
    {"10_quantize_ties.scale", npq_10_quantize_ties_scale_bits, 7, 1, npq_10_quantize_ties_scale_shape, NPQ_10_QUANTIZE_TIES_SCALE_SIZE},
    {"10_quantize_ties.output", npq_10_quantize_ties_output, 1, 1, npq_10_quantize_ties_output_shape, NPQ_10_QUANTIZE_TIES_OUTPUT_SIZE},
    {"11_quantize_saturation_uint8.input", npq_11_quantize_saturation_uint8_input_bits, 7, 1, npq_11_quantize_saturation_uint8_input_shape, NPQ_11_QUANTIZE_SATURATION_UINT8_INPUT_SIZE},
    {"11_quantize_saturation_uint8.scale", npq_11_quantize_saturation_uint8_scale_bits, 7, 1, npq_11_quantize_saturation_uint8_scale_shape, NPQ_11_QUANTIZE_SATURATION_UINT8_SCALE_SIZE},
    {"11_quantize_saturation_uint8.output", npq_11_quantize_saturation_uint8_output, 2, 1, npq_11_quantize_saturation_uint8_output_shape, NPQ_11_QUANTIZE_SATURATION_UINT8_OUTPUT_SIZE},
};
#endif /* NPQUANT_GOLDEN_PYTORCH_X86_H */
