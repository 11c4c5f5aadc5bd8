/*
 * vrf._ecvrf_c: CPython bindings over ecvrf.c. Each call copies nothing it does not need, drops
 * the GIL around the curve arithmetic and returns a status code with its bytes; mapping statuses
 * to exceptions is the job of vrf/_cbackend.py. Wrong buffer lengths raise ValueError here only
 * to keep memory safe: the Python bindings check lengths first.
 *
 * Functions whose names start with an underscore are test hooks over the building blocks
 * (field, scalar, group, SHA-512) for tests/vrf/test_c_internals.py; nothing else uses them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "ecvrf.h"
#include "fe25519.h"
#include "ge25519.h"
#include "sc25519.h"
#include "sha512.h"

static int check_len(const char *what, Py_ssize_t got, Py_ssize_t want)
{
    if (got != want) {
        PyErr_Format(PyExc_ValueError, "%s must be %zd bytes, got %zd", what, want, got);
        return -1;
    }
    return 0;
}

static PyObject *status_bytes(int st, const uint8_t *buf, Py_ssize_t len)
{
    if (st != ECVRF_OK) return Py_BuildValue("(iO)", st, Py_None);
    return Py_BuildValue("(iy#)", st, (const char *)buf, len);
}

/* ---------------------------------------------------------------- the backend operations */

static PyObject *py_public_key(PyObject *self, PyObject *args)
{
    const char *sk;
    Py_ssize_t sk_len;
    uint8_t pk[ECVRF_PK_LEN];
    int st;
    (void)self;
    if (!PyArg_ParseTuple(args, "y#:public_key", &sk, &sk_len)) return NULL;
    if (check_len("sk", sk_len, ECVRF_SK_LEN) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    st = ecvrf_public_key(pk, (const uint8_t *)sk);
    Py_END_ALLOW_THREADS
    return status_bytes(st, pk, ECVRF_PK_LEN);
}

static PyObject *py_validate_key(PyObject *self, PyObject *args)
{
    int suite, st;
    const char *pk;
    Py_ssize_t pk_len;
    (void)self;
    if (!PyArg_ParseTuple(args, "iy#:validate_key", &suite, &pk, &pk_len)) return NULL;
    if (check_len("pk", pk_len, ECVRF_PK_LEN) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    st = ecvrf_validate_key(suite, (const uint8_t *)pk);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(st);
}

static PyObject *py_prove(PyObject *self, PyObject *args)
{
    int suite, st;
    const char *sk, *alpha;
    Py_ssize_t sk_len, alpha_len;
    uint8_t pi[ECVRF_PROOF_LEN];
    (void)self;
    if (!PyArg_ParseTuple(args, "iy#y#:prove", &suite, &sk, &sk_len, &alpha, &alpha_len))
        return NULL;
    if (check_len("sk", sk_len, ECVRF_SK_LEN) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    st = ecvrf_prove(suite, pi, (const uint8_t *)sk, (const uint8_t *)alpha, (size_t)alpha_len,
                     NULL);
    Py_END_ALLOW_THREADS
    return status_bytes(st, pi, ECVRF_PROOF_LEN);
}

static PyObject *py_verify(PyObject *self, PyObject *args)
{
    int suite, st;
    const char *pk, *pi, *alpha;
    Py_ssize_t pk_len, pi_len, alpha_len;
    uint8_t beta[ECVRF_BETA_LEN];
    (void)self;
    if (!PyArg_ParseTuple(args, "iy#y#y#:verify", &suite, &pk, &pk_len, &pi, &pi_len, &alpha,
                          &alpha_len))
        return NULL;
    if (check_len("pk", pk_len, ECVRF_PK_LEN) < 0) return NULL;
    if (check_len("pi", pi_len, ECVRF_PROOF_LEN) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    st = ecvrf_verify(suite, beta, (const uint8_t *)pk, (const uint8_t *)pi,
                      (const uint8_t *)alpha, (size_t)alpha_len);
    Py_END_ALLOW_THREADS
    return status_bytes(st, beta, ECVRF_BETA_LEN);
}

static PyObject *py_proof_to_hash(PyObject *self, PyObject *args)
{
    int suite, st;
    const char *pi;
    Py_ssize_t pi_len;
    uint8_t beta[ECVRF_BETA_LEN];
    (void)self;
    if (!PyArg_ParseTuple(args, "iy#:proof_to_hash", &suite, &pi, &pi_len)) return NULL;
    if (check_len("pi", pi_len, ECVRF_PROOF_LEN) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    st = ecvrf_proof_to_hash(suite, beta, (const uint8_t *)pi);
    Py_END_ALLOW_THREADS
    return status_bytes(st, beta, ECVRF_BETA_LEN);
}

static int dict_set_bytes(PyObject *d, const char *key, const uint8_t *buf, Py_ssize_t len)
{
    PyObject *v = PyBytes_FromStringAndSize((const char *)buf, len);
    int rc;
    if (v == NULL) return -1;
    rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

static int dict_set_long(PyObject *d, const char *key, long value)
{
    PyObject *v = PyLong_FromLong(value);
    int rc;
    if (v == NULL) return -1;
    rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

static int h2c_trace_into(PyObject *d, const ecvrf_h2c_trace *t)
{
    if (dict_set_long(d, "tai_ctr", t->tai_ctr) < 0) return -1;
    if (t->tai_ctr >= 0) return 0;
    if (dict_set_bytes(d, "h2c_uniform_bytes", t->uniform, ECVRF_H2C_L) < 0) return -1;
    if (dict_set_bytes(d, "h2c_u", t->u, 32) < 0) return -1;
    if (dict_set_bytes(d, "h2c_gx1", t->gx1, 32) < 0) return -1;
    if (PyDict_SetItemString(d, "h2c_gx1_is_square", t->gx1_is_square ? Py_True : Py_False) < 0)
        return -1;
    return dict_set_long(d, "h2c_gx1_legendre", t->gx1_legendre);
}

/* Every intermediate of a proof, for the RFC 9381 appendix B vectors. Slow path: no GIL release
 * needed for correctness, but the math still runs without it. */
static PyObject *py_prove_trace(PyObject *self, PyObject *args)
{
    int suite, st;
    const char *sk, *alpha;
    Py_ssize_t sk_len, alpha_len;
    uint8_t pi[ECVRF_PROOF_LEN];
    ecvrf_trace t;
    PyObject *d;
    (void)self;
    if (!PyArg_ParseTuple(args, "iy#y#:prove_trace", &suite, &sk, &sk_len, &alpha, &alpha_len))
        return NULL;
    if (check_len("sk", sk_len, ECVRF_SK_LEN) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    st = ecvrf_prove(suite, pi, (const uint8_t *)sk, (const uint8_t *)alpha, (size_t)alpha_len,
                     &t);
    Py_END_ALLOW_THREADS
    if (st != ECVRF_OK) return Py_BuildValue("(iO)", st, Py_None);
    d = PyDict_New();
    if (d == NULL) return NULL;
    if (dict_set_bytes(d, "x", t.x, 32) < 0 || dict_set_bytes(d, "pk", t.pk, 32) < 0 ||
        h2c_trace_into(d, &t.h2c) < 0 || dict_set_bytes(d, "h", t.h, 32) < 0 ||
        dict_set_bytes(d, "k_string", t.k_string, 64) < 0 || dict_set_bytes(d, "k", t.k, 32) < 0 ||
        dict_set_bytes(d, "u", t.u, 32) < 0 || dict_set_bytes(d, "v", t.v, 32) < 0 ||
        dict_set_bytes(d, "gamma", t.gamma, 32) < 0 ||
        dict_set_bytes(d, "c", t.c, ECVRF_C_LEN) < 0 || dict_set_bytes(d, "s", t.s, 32) < 0 ||
        dict_set_bytes(d, "pi", t.pi, ECVRF_PROOF_LEN) < 0 ||
        dict_set_bytes(d, "beta", t.beta, ECVRF_BETA_LEN) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return Py_BuildValue("(iN)", st, d);
}

static PyObject *py_encode_to_curve_trace(PyObject *self, PyObject *args)
{
    int suite, st;
    const char *pk, *alpha;
    Py_ssize_t pk_len, alpha_len;
    uint8_t h[32];
    ecvrf_h2c_trace t;
    PyObject *d;
    (void)self;
    if (!PyArg_ParseTuple(args, "iy#y#:encode_to_curve_trace", &suite, &pk, &pk_len, &alpha,
                          &alpha_len))
        return NULL;
    if (check_len("pk", pk_len, ECVRF_PK_LEN) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    st = ecvrf_encode_to_curve(suite, h, (const uint8_t *)pk, (const uint8_t *)alpha,
                               (size_t)alpha_len, &t);
    Py_END_ALLOW_THREADS
    if (st != ECVRF_OK) return Py_BuildValue("(iO)", st, Py_None);
    d = PyDict_New();
    if (d == NULL) return NULL;
    if (dict_set_bytes(d, "h", h, 32) < 0 || h2c_trace_into(d, &t) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return Py_BuildValue("(iN)", st, d);
}

/* ---------------------------------------------------------------- test hooks */

static PyObject *t_sha512(PyObject *self, PyObject *args)
{
    const char *data;
    Py_ssize_t len;
    uint8_t out[SHA512_DIGEST_LEN];
    Py_ssize_t chunk = 0;
    (void)self;
    /* chunk > 0 feeds the data in pieces of that size to exercise the incremental buffer. */
    if (!PyArg_ParseTuple(args, "y#|n:_sha512", &data, &len, &chunk)) return NULL;
    if (chunk <= 0) {
        sha512(out, (const uint8_t *)data, (size_t)len);
    } else {
        sha512_ctx ctx;
        sha512_init(&ctx);
        for (Py_ssize_t off = 0; off < len; off += chunk) {
            const Py_ssize_t n = (len - off < chunk) ? len - off : chunk;
            sha512_update(&ctx, (const uint8_t *)data + off, (size_t)n);
        }
        sha512_final(&ctx, out);
    }
    return PyBytes_FromStringAndSize((const char *)out, SHA512_DIGEST_LEN);
}

static int parse_fe(const char *buf, Py_ssize_t len, fe *f)
{
    if (check_len("field element", len, 32) < 0) return -1;
    fe_frombytes(f, (const uint8_t *)buf);
    return 0;
}

static PyObject *fe_result(const fe *f)
{
    uint8_t s[32];
    fe_tobytes(s, f);
    return PyBytes_FromStringAndSize((const char *)s, 32);
}

/* _fe(op, a[, b]): field operation on 255-bit little-endian inputs (bit 255 ignored, values
 * >= p accepted as their residue), returning the canonical encoding. */
static PyObject *t_fe(PyObject *self, PyObject *args)
{
    const char *op, *a, *b = NULL;
    Py_ssize_t alen, blen = 0;
    fe x, y, r;
    (void)self;
    if (!PyArg_ParseTuple(args, "sy#|y#:_fe", &op, &a, &alen, &b, &blen)) return NULL;
    if (parse_fe(a, alen, &x) < 0) return NULL;
    if (b != NULL && parse_fe(b, blen, &y) < 0) return NULL;
    if (strcmp(op, "canon") == 0) return fe_result(&x);
    if (strcmp(op, "neg") == 0) { fe_neg(&r, &x); return fe_result(&r); }
    if (strcmp(op, "sq") == 0) { fe_sq(&r, &x); return fe_result(&r); }
    if (strcmp(op, "sq2") == 0) { fe_sq2(&r, &x); return fe_result(&r); }
    if (strcmp(op, "invert") == 0) { fe_invert(&r, &x); return fe_result(&r); }
    if (strcmp(op, "pow22523") == 0) { fe_pow22523(&r, &x); return fe_result(&r); }
    if (strcmp(op, "legendre") == 0) return PyLong_FromLong(fe_legendre(&x));
    if (strcmp(op, "iszero") == 0) return PyBool_FromLong(fe_iszero(&x));
    if (strcmp(op, "isnegative") == 0) return PyBool_FromLong(fe_isnegative(&x));
    if (strcmp(op, "canonical_bytes") == 0)
        return PyBool_FromLong(fe_bytes_canonical_vartime((const uint8_t *)a));
    if (strcmp(op, "sqrt") == 0) {
        const int ok = fe_sqrt(&r, &x);
        if (!ok) Py_RETURN_NONE;
        return fe_result(&r);
    }
    if (b == NULL) {
        PyErr_Format(PyExc_ValueError, "unknown unary field op %s", op);
        return NULL;
    }
    if (strcmp(op, "add") == 0) { fe_add(&r, &x, &y); fe_carry(&r); return fe_result(&r); }
    if (strcmp(op, "sub") == 0) { fe_sub(&r, &x, &y); return fe_result(&r); }
    if (strcmp(op, "mul") == 0) { fe_mul(&r, &x, &y); return fe_result(&r); }
    if (strcmp(op, "equal") == 0) return PyBool_FromLong(fe_equal(&x, &y));
    PyErr_Format(PyExc_ValueError, "unknown field op %s", op);
    return NULL;
}

/* _fe_mul_loose(a, b, k): multiply after adding a to itself k times without carrying, to drive
 * fe_mul with limbs up to the 2^54 bound of fe25519.h. Returns the canonical product. */
static PyObject *t_fe_mul_loose(PyObject *self, PyObject *args)
{
    const char *a, *b;
    Py_ssize_t alen, blen;
    int k;
    fe x, y, acc, r;
    (void)self;
    if (!PyArg_ParseTuple(args, "y#y#i:_fe_mul_loose", &a, &alen, &b, &blen, &k)) return NULL;
    if (parse_fe(a, alen, &x) < 0 || parse_fe(b, blen, &y) < 0) return NULL;
    if (k < 1 || k > 7) {
        PyErr_SetString(PyExc_ValueError, "k must be in 1..7 (limbs stay below 2^54)");
        return NULL;
    }
    acc = x;
    for (int i = 1; i < k; i++) fe_add(&acc, &acc, &x);
    fe_mul(&r, &acc, &y);
    return fe_result(&r);
}

static PyObject *t_fe_from_wide(PyObject *self, PyObject *args)
{
    const char *a;
    Py_ssize_t alen;
    fe r;
    (void)self;
    if (!PyArg_ParseTuple(args, "y#:_fe_from_wide", &a, &alen)) return NULL;
    if (alen > 64) {
        PyErr_SetString(PyExc_ValueError, "at most 64 bytes");
        return NULL;
    }
    fe_from_wide_le(&r, (const uint8_t *)a, (size_t)alen);
    return fe_result(&r);
}

/* _sc(op, ...): reduce64(b64) | muladd(a, b, c) | canonical(s). */
static PyObject *t_sc(PyObject *self, PyObject *args)
{
    const char *op, *a, *b = NULL, *c = NULL;
    Py_ssize_t alen, blen = 0, clen = 0;
    uint8_t out[32];
    (void)self;
    if (!PyArg_ParseTuple(args, "sy#|y#y#:_sc", &op, &a, &alen, &b, &blen, &c, &clen)) return NULL;
    if (strcmp(op, "reduce64") == 0) {
        if (check_len("input", alen, 64) < 0) return NULL;
        sc_reduce64(out, (const uint8_t *)a);
        return PyBytes_FromStringAndSize((const char *)out, 32);
    }
    if (strcmp(op, "canonical") == 0) {
        if (check_len("scalar", alen, 32) < 0) return NULL;
        return PyBool_FromLong(sc_is_canonical_vartime((const uint8_t *)a));
    }
    if (strcmp(op, "muladd") == 0) {
        if (b == NULL || c == NULL) {
            PyErr_SetString(PyExc_ValueError, "muladd needs a, b, c");
            return NULL;
        }
        if (check_len("a", alen, 32) < 0 || check_len("b", blen, 32) < 0 ||
            check_len("c", clen, 32) < 0)
            return NULL;
        if ((a[31] & 0x80) || (b[31] & 0x80)) {
            PyErr_SetString(PyExc_ValueError, "a and b must be < 2^255");
            return NULL;
        }
        sc_muladd(out, (const uint8_t *)a, (const uint8_t *)b, (const uint8_t *)c);
        return PyBytes_FromStringAndSize((const char *)out, 32);
    }
    PyErr_Format(PyExc_ValueError, "unknown scalar op %s", op);
    return NULL;
}

static int parse_point(const char *buf, Py_ssize_t len, ge_p3 *p)
{
    if (check_len("point", len, 32) < 0) return -1;
    return ge_frombytes_vartime(p, (const uint8_t *)buf) == 0 ? 1 : 0;
}

static PyObject *point_result(const ge_p3 *p)
{
    uint8_t s[32];
    ge_p3_tobytes(s, p);
    return PyBytes_FromStringAndSize((const char *)s, 32);
}

static int parse_scalar(const char *buf, Py_ssize_t len, int top_clear)
{
    if (check_len("scalar", len, 32) < 0) return -1;
    if (top_clear && (((const uint8_t *)buf)[31] & 0x80)) {
        PyErr_SetString(PyExc_ValueError, "scalar must be < 2^255");
        return -1;
    }
    return 0;
}

/* _ge(op, ...): point operations on encodings. Returns None when an input does not decode.
 *   decode(P) -> P re-encoded            add(P, Q)          dbl(P)         neg(P)
 *   cofactor(P) -> 8P                    small_order(P) -> bool
 *   base(a) -> aB (constant time)        mul(a, P) -> aP (constant time)
 *   dsm_base(a, b, P) -> aB + bP         dsm(a, A, b, P) -> aA + bP   (variable time)
 *   batch(P1..Pn) -> encodings through the batched inversion. */
static PyObject *t_ge(PyObject *self, PyObject *args)
{
    const char *op;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    const char *buf[5];
    Py_ssize_t len[5];
    ge_p3 P, Q, R;
    (void)self;
    if (n < 2 || n > 6) {
        PyErr_SetString(PyExc_TypeError, "_ge(op, 1 to 5 bytes arguments)");
        return NULL;
    }
    {
        PyObject *o = PyTuple_GET_ITEM(args, 0);
        if (!PyUnicode_Check(o)) {
            PyErr_SetString(PyExc_TypeError, "op must be str");
            return NULL;
        }
        op = PyUnicode_AsUTF8(o);
        if (op == NULL) return NULL;
    }
    for (Py_ssize_t i = 1; i < n; i++) {
        char *b;
        if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(args, i), &b, &len[i - 1]) < 0) return NULL;
        buf[i - 1] = b;
    }
    n -= 1;
#define NEED(k)                                                                   \
    do {                                                                          \
        if (n != (k)) {                                                           \
            PyErr_Format(PyExc_TypeError, "%s takes %d byte arguments", op, (k)); \
            return NULL;                                                          \
        }                                                                         \
    } while (0)
#define POINT(i, dst)                                     \
    do {                                                  \
        const int ok_ = parse_point(buf[i], len[i], dst); \
        if (ok_ < 0) return NULL;                         \
        if (ok_ == 0) Py_RETURN_NONE;                     \
    } while (0)
    if (strcmp(op, "decode") == 0) { NEED(1); POINT(0, &P); return point_result(&P); }
    if (strcmp(op, "dbl") == 0) { NEED(1); POINT(0, &P); ge_p3_dbl(&R, &P); return point_result(&R); }
    if (strcmp(op, "neg") == 0) { NEED(1); POINT(0, &P); ge_p3_neg(&R, &P); return point_result(&R); }
    if (strcmp(op, "cofactor") == 0) {
        NEED(1); POINT(0, &P); ge_mul_by_cofactor(&R, &P); return point_result(&R);
    }
    if (strcmp(op, "small_order") == 0) {
        NEED(1); POINT(0, &P); ge_mul_by_cofactor(&R, &P);
        return PyBool_FromLong(ge_is_identity_vartime(&R));
    }
    if (strcmp(op, "add") == 0) {
        NEED(2); POINT(0, &P); POINT(1, &Q); ge_p3_add(&R, &P, &Q); return point_result(&R);
    }
    if (strcmp(op, "base") == 0) {
        NEED(1);
        if (parse_scalar(buf[0], len[0], 1) < 0) return NULL;
        ge_scalarmult_base(&R, (const uint8_t *)buf[0]);
        return point_result(&R);
    }
    if (strcmp(op, "mul") == 0) {
        ge_ct_table_t table;
        NEED(2);
        if (parse_scalar(buf[0], len[0], 1) < 0) return NULL;
        POINT(1, &P);
        ge_ct_table(&table, &P);
        ge_scalarmult_ct(&R, (const uint8_t *)buf[0], &table);
        return point_result(&R);
    }
    if (strcmp(op, "dsm_base") == 0) {
        NEED(3);
        if (parse_scalar(buf[0], len[0], 1) < 0 || parse_scalar(buf[1], len[1], 1) < 0) return NULL;
        POINT(2, &P);
        ge_double_scalarmult_base_vartime(&R, (const uint8_t *)buf[0], (const uint8_t *)buf[1], &P);
        return point_result(&R);
    }
    if (strcmp(op, "dsm") == 0) {
        NEED(4);
        if (parse_scalar(buf[0], len[0], 1) < 0 || parse_scalar(buf[2], len[2], 1) < 0) return NULL;
        POINT(1, &P);
        POINT(3, &Q);
        ge_double_scalarmult_vartime(&R, (const uint8_t *)buf[0], &P, (const uint8_t *)buf[2], &Q);
        return point_result(&R);
    }
    if (strcmp(op, "batch") == 0) {
        ge_p3 pts[5];
        uint8_t enc[5][32];
        PyObject *out;
        for (Py_ssize_t i = 0; i < n; i++) POINT(i, &pts[i]);
        ge_p3_batch_tobytes(enc, pts, (size_t)n);
        out = PyTuple_New(n);
        if (out == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *b = PyBytes_FromStringAndSize((const char *)enc[i], 32);
            if (b == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(out, i, b);
        }
        return out;
    }
#undef NEED
#undef POINT
    PyErr_Format(PyExc_ValueError, "unknown group op %s", op);
    return NULL;
}

static PyObject *t_h2c_nu(PyObject *self, PyObject *args)
{
    const char *msg, *dst;
    Py_ssize_t msg_len, dst_len;
    uint8_t u[32], q[32], p[32];
    (void)self;
    if (!PyArg_ParseTuple(args, "y#y#:_h2c_nu", &msg, &msg_len, &dst, &dst_len)) return NULL;
    if (dst_len > 255) {
        PyErr_SetString(PyExc_ValueError, "DST must be at most 255 bytes");
        return NULL;
    }
    ecvrf_h2c_nu(u, q, p, (const uint8_t *)msg, (size_t)msg_len, (const uint8_t *)dst,
                 (size_t)dst_len);
    return Py_BuildValue("(y#y#y#)", (const char *)u, (Py_ssize_t)32, (const char *)q,
                         (Py_ssize_t)32, (const char *)p, (Py_ssize_t)32);
}

static PyObject *t_ell2_map(PyObject *self, PyObject *args)
{
    const char *u;
    Py_ssize_t u_len;
    uint8_t q[32];
    (void)self;
    if (!PyArg_ParseTuple(args, "y#:_ell2_map", &u, &u_len)) return NULL;
    if (check_len("u", u_len, 32) < 0) return NULL;
    ecvrf_ell2_map(q, (const uint8_t *)u);
    return PyBytes_FromStringAndSize((const char *)q, 32);
}

static PyMethodDef methods[] = {
    {"public_key", py_public_key, METH_VARARGS,
     "public_key(sk32) -> (status, pk32 | None): RFC 8032 key derivation."},
    {"validate_key", py_validate_key, METH_VARARGS,
     "validate_key(suite, pk32) -> status: RFC 9381 5.4.5."},
    {"prove", py_prove, METH_VARARGS, "prove(suite, sk32, alpha) -> (status, pi80 | None)."},
    {"verify", py_verify, METH_VARARGS,
     "verify(suite, pk32, pi80, alpha) -> (status, beta64 | None)."},
    {"proof_to_hash", py_proof_to_hash, METH_VARARGS,
     "proof_to_hash(suite, pi80) -> (status, beta64 | None)."},
    {"prove_trace", py_prove_trace, METH_VARARGS,
     "prove_trace(suite, sk32, alpha) -> (status, dict | None): every intermediate."},
    {"encode_to_curve_trace", py_encode_to_curve_trace, METH_VARARGS,
     "encode_to_curve_trace(suite, pk32, alpha) -> (status, dict | None)."},
    {"_sha512", t_sha512, METH_VARARGS, "test hook: SHA-512(data[, chunk])."},
    {"_fe", t_fe, METH_VARARGS, "test hook: field operations."},
    {"_fe_mul_loose", t_fe_mul_loose, METH_VARARGS, "test hook: fe_mul on uncarried limbs."},
    {"_fe_from_wide", t_fe_from_wide, METH_VARARGS, "test hook: reduce <= 64 LE bytes mod p."},
    {"_sc", t_sc, METH_VARARGS, "test hook: scalar operations mod q."},
    {"_ge", t_ge, METH_VARARGS, "test hook: group operations."},
    {"_h2c_nu", t_h2c_nu, METH_VARARGS,
     "test hook: RFC 9380 edwards25519_XMD:SHA-512_ELL2_NU_(msg, dst) -> (u, Q, P)."},
    {"_ell2_map", t_ell2_map, METH_VARARGS, "test hook: Elligator 2 map of u -> Q."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "vrf._ecvrf_c",
    "ECVRF-EDWARDS25519-SHA512-TAI/ELL2 (RFC 9381) in C. Use it through vrf._cbackend.", -1,
    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ecvrf_c(void)
{
    PyObject *m;
    if (ecvrf_init() != ECVRF_OK) {
        PyErr_SetString(PyExc_ImportError, "vrf._ecvrf_c: building the base-point tables failed");
        return NULL;
    }
    m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "STATUS_OK", ECVRF_OK) < 0 ||
        PyModule_AddIntConstant(m, "STATUS_ERR_KEY_ENCODING", ECVRF_ERR_KEY_ENCODING) < 0 ||
        PyModule_AddIntConstant(m, "STATUS_ERR_KEY_SMALL_ORDER", ECVRF_ERR_KEY_SMALL_ORDER) < 0 ||
        PyModule_AddIntConstant(m, "STATUS_ERR_PROOF_GAMMA", ECVRF_ERR_PROOF_GAMMA) < 0 ||
        PyModule_AddIntConstant(m, "STATUS_ERR_PROOF_S", ECVRF_ERR_PROOF_S) < 0 ||
        PyModule_AddIntConstant(m, "STATUS_ERR_VERIFY", ECVRF_ERR_VERIFY) < 0 ||
        PyModule_AddIntConstant(m, "STATUS_ERR_SUITE", ECVRF_ERR_SUITE) < 0 ||
        PyModule_AddIntConstant(m, "STATUS_ERR_ENCODE", ECVRF_ERR_ENCODE) < 0 ||
        PyModule_AddIntConstant(m, "STATUS_ERR_INIT", ECVRF_ERR_INIT) < 0 ||
        PyModule_AddIntConstant(m, "SUITE_TAI", ECVRF_SUITE_TAI) < 0 ||
        PyModule_AddIntConstant(m, "SUITE_ELL2", ECVRF_SUITE_ELL2) < 0 ||
        PyModule_AddIntConstant(m, "PROOF_LEN", ECVRF_PROOF_LEN) < 0 ||
        PyModule_AddIntConstant(m, "BETA_LEN", ECVRF_BETA_LEN) < 0 ||
        PyModule_AddIntConstant(m, "KEY_LEN", ECVRF_PK_LEN) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
