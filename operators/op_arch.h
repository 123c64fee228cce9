/*
 * operators/op_arch.h: the architecture as the runtime sees it.
 *
 * A build directory carries the architecture as text: exactly what
 * genome_arch_describe() prints ("arch/1 d=... vocab=... tied=..." and one
 * "L<i> ..." line per layer), whose SHA-256 is the genome's content hash. The
 * runtime parses that text with op_arch_parse, so the host and the device
 * agree on one description and the device can report the hash of what it ran.
 * This file and arch.c use libc only (operators/ ships to devices).
 *
 * Usage:
 *     op_arch a; tl_err err = TL_ERR_INIT;
 *     if (op_arch_parse(&a, text, "arch.txt", &err) < 0) ...
 */
#ifndef OP_ARCH_H
#define OP_ARCH_H

#include <stdint.h>

#include "op_mix.h" /* enum op_mask, enum op_nonlin */
#include "tl.h"

#define OP_MAX_LAYERS 128
#define OP_NGROUPS 4 /* feature groups C, B, V, A */

/* Mirrors of the genome's enums (operators/ may not include genome.h); the
 * names are what the arch text spells. */
enum op_feat { OP_FEAT_QKV, OP_FEAT_BCH, OP_FEAT_CBVA, OP_FEAT_GLU, OP_FEAT_COUNT };
enum op_struct { OP_DIAGONAL, OP_LOWRANK, OP_SEMISEP, OP_TOEPLITZ, OP_DENSE, OP_STRUCT_COUNT };
#define OP_MASK_COUNT 3 /* enum op_mask (op_mix.h): none, window, block */
#define OP_NL_COUNT 5   /* enum op_nonlin (op_mix.h): none, softmax, silu, sigmoid, posfeat */
enum op_chmix { OP_CH_DIAGONAL, OP_CH_HEADS, OP_CH_DENSE, OP_CH_COUNT };
enum op_group { OP_G_C, OP_G_B, OP_G_V, OP_G_A };

typedef struct op_layer {
	uint8_t feat, structure, mask, nonlin, chmix; /* enums above            */
	uint16_t heads, kv_heads, head_dim;           /* head_dim 0: no heads    */
	uint16_t len;        /* conv kernel, window or block length; 0 none    */
	uint32_t inner;      /* value width (out-projection input)             */
	uint32_t state;      /* recurrence state per head; 0 otherwise          */
	uint8_t qk_norm, rope;
	uint32_t width[OP_NGROUPS]; /* feature width, 0 = group not computed     */
	uint16_t conv[OP_NGROUPS];  /* featurizer conv length, 0 none            */
	uint8_t proj_chmix[OP_NGROUPS];
	int16_t wowner[OP_NGROUPS]; /* layer owning the projection (self: own)   */
	int16_t xowner[OP_NGROUPS]; /* layer computing the feature (self: own)   */
} op_layer;

typedef struct op_arch {
	uint32_t d_model, vocab;
	uint32_t rope_theta; /* 0 when no layer uses RoPE (not in the text) */
	uint8_t tied;
	uint16_t n_layers;
	op_layer layers[OP_MAX_LAYERS];
} op_arch;

/* Parse the arch text. Errors: TL_EPARSE "<source>: line N: <reason>". */
int op_arch_parse(op_arch *out, const char *text, const char *source, tl_err *err);

/* The names the arch text spells ("?" out of range). */
const char *op_struct_name(int s);
const char *op_feat_name(int v);
const char *op_mask_name(int v);
const char *op_nonlin_name(int v);
const char *op_chmix_name(int v);

#endif
