/* spikegen._native: optional fused CPU loops for the spike kernels.
 *
 * The numpy kernels in spikegen.spikes make one pass over a frame per numpy call; these loops
 * do a step's work in one pass and keep a tile of the state in cache over all the steps. They
 * use the same float operations in the same order as the numpy kernels (built without
 * fast-math and without contracting a * b + c into a fused multiply-add), so the results are
 * bit-identical; spikegen falls back to numpy when this module is missing, stale
 * (ABI_VERSION) or switched off with SPIKEGEN_NATIVE=0.
 *
 * Only the buffer protocol is used (no numpy headers): the caller passes C-contiguous buffers
 * and their shapes, and this file checks that the sizes agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(__clang__)
#define restrict __restrict
#endif

#define ABI_VERSION 1
#ifndef SOURCE_HASH /* set by setup.py: the first 60 bits of this file's SHA-256 */
#define SOURCE_HASH 0ULL
#endif
/* the state tile: its charge and state stay in L1 / L2 over all the steps of a call */
#ifndef TILE_BYTES
#define TILE_BYTES (64 * 1024)
#endif

/* ---------------------------------------------------------------- integrate-and-fire
 * Per pixel and step (mode: 0 q = x, 1 q = x * s, 2 q = x * s[p], 3 q = x * s[p] + o[p]):
 *     a = src + q;  f = a >= 1;  out = f;  a = a - f
 * The first step starts from `start` when given (copied into the state tile). With `check`
 * every x must be finite and >= 0 (-0.0 included); the return value is nonzero when one is not (the
 * loop then stops: the caller raises and drops the state and the output). x_ts is the stride
 * in elements between steps of x (0: a static charge, the same every step). */
#define IF_KERNEL(NAME, REAL, MAXV, ATTR)                                                   \
    ATTR static int NAME(const REAL *x, Py_ssize_t x_ts, REAL *a, const REAL *start,        \
                         unsigned char *out, const REAL *s, REAL s1, const REAL *off,       \
                         int mode, int check, Py_ssize_t nt, Py_ssize_t np_)                \
    {                                                                                       \
        Py_ssize_t tile = TILE_BYTES / (Py_ssize_t)sizeof(REAL);                            \
        for (Py_ssize_t p0 = 0; p0 < np_; p0 += tile) {                                     \
            Py_ssize_t n = np_ - p0 < tile ? np_ - p0 : tile;                               \
            REAL *restrict ar = a + p0;                                                     \
            const REAL *restrict sr = s ? s + p0 : NULL;                                    \
            const REAL *restrict orr = off ? off + p0 : NULL;                               \
            for (Py_ssize_t t = 0; t < nt; t++) {                                           \
                const REAL *restrict xr = x + t * x_ts + p0;                                \
                if (t == 0 && start)                                                        \
                    memcpy(ar, start + p0, (size_t)n * sizeof(REAL));                       \
                unsigned char *restrict o = out + t * np_ + p0;                             \
                int bad = 0;                                                                \
                switch (mode) {                                                             \
                case 0: IF_BODY(REAL, MAXV, v); break;                                      \
                case 1: IF_BODY(REAL, MAXV, v * s1); break;                                 \
                case 2: IF_BODY(REAL, MAXV, v * sr[p]); break;                              \
                default: IF_BODY(REAL, MAXV, v * sr[p] + orr[p]); break;                    \
                }                                                                           \
                if (check && bad)                                                           \
                    return 1;                                                               \
            }                                                                               \
        }                                                                                   \
        return 0;                                                                           \
    }

/* one step over a tile; CHARGE is the charge of one pixel from its input value v */
#define IF_BODY(REAL, MAXV, CHARGE)                                                         \
    for (Py_ssize_t p = 0; p < n; p++) {                                                    \
        REAL v = xr[p];                                                                     \
        bad |= !(v >= (REAL)0 && v <= (MAXV));                                              \
        REAL q = CHARGE;                                                                    \
        REAL acc = ar[p] + q;                                                               \
        int f = acc >= (REAL)1;                                                             \
        o[p] = (unsigned char)f;                                                            \
        ar[p] = acc - (f ? (REAL)1 : (REAL)0);                                              \
    }

/* x86: every loop is compiled for the baseline (SSE2) and for AVX2, chosen at run time as
 * numpy does for its own loops (the baseline integrate-and-fire was about 2.5x slower, mostly
 * in packing the spikes to bytes). Elsewhere the second copy is the baseline again. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_AVX2 1
#define AVX2_ATTR __attribute__((target("avx2")))
#else
#define AVX2_ATTR
#endif
/* a kernel of integer type T in its three widths, both builds: NAME_u8, NAME_u16, NAME_i32
 * and NAME_u8_avx2, ... */
#define INT_KERNELS(KERNEL, NAME)                                                           \
    KERNEL(NAME##_u8, , unsigned char)                                                      \
    KERNEL(NAME##_u16, , unsigned short)                                                    \
    KERNEL(NAME##_i32, , int)                                                               \
    KERNEL(NAME##_u8_avx2, AVX2_ATTR, unsigned char)                                        \
    KERNEL(NAME##_u16_avx2, AVX2_ATTR, unsigned short)                                      \
    KERNEL(NAME##_i32_avx2, AVX2_ATTR, int)

IF_KERNEL(if_f32, float, FLT_MAX, )
IF_KERNEL(if_f64, double, DBL_MAX, )
IF_KERNEL(if_f32_avx2, float, FLT_MAX, AVX2_ATTR)
IF_KERNEL(if_f64_avx2, double, DBL_MAX, AVX2_ATTR)
static int use_avx2 = 0;

/* whether a buffer's struct format is the native single item `fmt` ("f", "@f" or "=f") */
static int format_is(const Py_buffer *view, char fmt)
{
    const char *f = view->format ? view->format : "B";
    if (f[0] == '@' || f[0] == '=')
        f++;
    return f[0] == fmt && f[1] == 0;
}

/* a C-contiguous buffer of `count` items of `itemsize` bytes, writable when asked; with `fmt`
 * the native item type it must have (0: any item of one byte) */
static int get_buf(PyObject *obj, Py_buffer *view, const char *name, Py_ssize_t count,
                   Py_ssize_t itemsize, char fmt, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    if (fmt && !format_is(view, fmt)) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of format '%c', got '%s'", name, fmt,
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    if (view->itemsize != itemsize || view->len != count * itemsize) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected %zd items of %zd bytes, got %zd bytes in items of %zd", name,
                     count, itemsize, view->len, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* a C-contiguous int64 buffer ('q', or 'l' where long has 64 bits) of *count items, or of any
 * length when *count < 0 (then set to it) */
static int get_i64(PyObject *obj, Py_buffer *view, const char *name, Py_ssize_t *count)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    char fmt = format_is(view, 'l') && sizeof(long) == 8 ? 'l' : 'q';
    Py_ssize_t n = *count >= 0 ? *count : view->len / 8;
    PyBuffer_Release(view);
    if (get_buf(obj, view, name, n, 8, fmt, 0) < 0)
        return -1;
    *count = n;
    return 0;
}

static PyObject *py_integrate_and_fire(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "state", "out", "start", "scale", "offset",
                             "batch", "steps", "pixels", "static", "check", NULL};
    PyObject *xo, *ao, *oo, *starto = Py_None, *so = Py_None, *offo = Py_None;
    Py_ssize_t nb, nt, np_;
    int is_static = 0, check = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOnnn|pp", kwlist, &xo, &ao, &oo, &starto,
                                     &so, &offo, &nb, &nt, &np_, &is_static, &check))
        return NULL;
    if (nb < 0 || nt < 0 || np_ < 0) {
        PyErr_SetString(PyExc_ValueError, "negative size");
        return NULL;
    }
    Py_buffer xb, ab, ob, stb = {0}, sb = {0}, offb = {0};
    int have_start = starto != Py_None, have_s = 0, have_off = offo != Py_None, bad = 0;
    double s1 = 1.0;
    int mode = 0;
    /* the element type is the state's */
    if (PyObject_GetBuffer(ao, &ab, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        return NULL;
    char fmt = format_is(&ab, 'f') ? 'f' : format_is(&ab, 'd') ? 'd' : 0;
    PyBuffer_Release(&ab);
    if (!fmt) {
        PyErr_SetString(PyExc_TypeError, "state must be float32 or float64");
        return NULL;
    }
    Py_ssize_t isz = fmt == 'f' ? 4 : 8;
    if (get_buf(ao, &ab, "state", nb * np_, isz, fmt, 1) < 0)
        return NULL;
    if (get_buf(xo, &xb, "x", nb * (is_static ? 1 : nt) * np_, isz, fmt, 0) < 0)
        goto fail_a;
    if (get_buf(oo, &ob, "out", nb * nt * np_, 1, 0, 1) < 0)
        goto fail_x;
    if (have_start && get_buf(starto, &stb, "start", nb * np_, isz, fmt, 0) < 0)
        goto fail_o;
    if (so != Py_None) {
        if (PyFloat_Check(so) || PyLong_Check(so)) {
            s1 = PyFloat_AsDouble(so);
            if (s1 == -1.0 && PyErr_Occurred())
                goto fail_st;
            mode = 1;
        } else {
            if (get_buf(so, &sb, "scale", nb * np_, isz, fmt, 0) < 0)
                goto fail_st;
            have_s = 1;
            mode = 2;
        }
    }
    if (have_off) {
        if (!have_s) {
            PyErr_SetString(PyExc_ValueError, "offset needs a per-pixel scale");
            goto fail_s;
        }
        if (get_buf(offo, &offb, "offset", nb * np_, isz, fmt, 0) < 0)
            goto fail_s;
        mode = 3;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < nb && !bad; i++) {
        Py_ssize_t xs = is_static ? np_ : nt * np_;
        unsigned char *o = (unsigned char *)ob.buf + i * nt * np_;
        if (fmt == 'f') {
            const float *st = have_start ? (const float *)stb.buf + i * np_ : NULL;
            const float *s = have_s ? (const float *)sb.buf + i * np_ : NULL;
            const float *of = have_off ? (const float *)offb.buf + i * np_ : NULL;
            bad = (use_avx2 ? if_f32_avx2 : if_f32)((const float *)xb.buf + i * xs,
                                                    is_static ? 0 : np_, (float *)ab.buf + i * np_,
                                                    st, o, s, (float)s1, of, mode, check, nt, np_);
        } else {
            const double *st = have_start ? (const double *)stb.buf + i * np_ : NULL;
            const double *s = have_s ? (const double *)sb.buf + i * np_ : NULL;
            const double *of = have_off ? (const double *)offb.buf + i * np_ : NULL;
            bad = (use_avx2 ? if_f64_avx2 : if_f64)((const double *)xb.buf + i * xs,
                                                    is_static ? 0 : np_, (double *)ab.buf + i * np_,
                                                    st, o, s, s1, of, mode, check, nt, np_);
        }
    }
    Py_END_ALLOW_THREADS
    if (have_off)
        PyBuffer_Release(&offb);
    if (have_s)
        PyBuffer_Release(&sb);
    if (have_start)
        PyBuffer_Release(&stb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&ab);
    return PyBool_FromLong(!bad);

fail_s:
    if (have_s)
        PyBuffer_Release(&sb);
fail_st:
    if (have_start)
        PyBuffer_Release(&stb);
fail_o:
    PyBuffer_Release(&ob);
fail_x:
    PyBuffer_Release(&xb);
fail_a:
    PyBuffer_Release(&ab);
    return NULL;
}

/* ---------------------------------------------------------------- TFP
 * out[i] = float32(count of spikes in frames st[i] .. en[i]) * fac[i], clamped to 1 where
 * clamp[i]: the numpy kernel's arithmetic. Pixels go in tiles of up to 2^20 (`tile`): whole
 * frames at any usual size, since writing the output frame by frame was faster than in small
 * tiles whose counts stay in L1 (16.8 against 20.3 ms for 100 outputs at 250x400, tiles of
 * 131 072 and of 4096 pixels). Per tile a window is the previous one plus the frames entering
 * and minus those leaving when that reads fewer frames than summing it afresh. With `check`
 * every frame is OR-ed into the return value as it is added (frames no window reads once at
 * the end): above 1 means not binary. */
#ifndef TFP_TILE
#define TFP_TILE (1 << 20)
#endif

#define TFP_ADD(OP)                                                                         \
    for (Py_ssize_t p = 0; p < n; p++)                                                      \
        cnt[p] OP sr[p];

#define TFP_KERNEL(NAME, ATTR, CNT)                                                         \
    ATTR static unsigned NAME(const unsigned char *s, float *out, const long long *st,      \
                              const long long *en, const float *fac,                        \
                              const unsigned char *cl, Py_ssize_t nw, Py_ssize_t L,         \
                              Py_ssize_t P, int check, unsigned char *done,                 \
                              void *cnt_buf, Py_ssize_t tile)                               \
    {                                                                                       \
        CNT *restrict cnt = (CNT *)cnt_buf;                                                 \
        unsigned char seen = 0;                                                             \
        for (Py_ssize_t p0 = 0; p0 < P; p0 += tile) {                                       \
            Py_ssize_t n = P - p0 < tile ? P - p0 : tile;                                   \
            long long ps = 0, pe = -1;                                                      \
            for (Py_ssize_t i = 0; i < nw; i++) {                                           \
                long long a = st[i], e = en[i];                                             \
                long long inc = (a >= ps && e >= pe && a <= pe + 1) ? (a - ps) + (e - pe)   \
                                                                    : e - a + 2;            \
                long long r0 = pe + 1;                                                      \
                if (inc > e - a + 1 || pe < 0) {                                            \
                    memset(cnt, 0, (size_t)n * sizeof(CNT));                                \
                    r0 = a;                                                                 \
                } else {                                                                    \
                    for (long long r = ps; r < a; r++) {                                    \
                        const unsigned char *restrict sr = s + r * P + p0;                  \
                        TFP_ADD(-=)                                                         \
                    }                                                                       \
                }                                                                           \
                for (long long r = r0; r <= e; r++) {                                       \
                    const unsigned char *restrict sr = s + r * P + p0;                      \
                    if (check) {                                                            \
                        unsigned char orv = 0;                                              \
                        for (Py_ssize_t p = 0; p < n; p++) {                                \
                            cnt[p] += sr[p];                                                \
                            orv |= sr[p];                                                   \
                        }                                                                   \
                        seen |= orv;                                                        \
                        done[r] = 1;                                                        \
                    } else {                                                                \
                        TFP_ADD(+=)                                                         \
                    }                                                                       \
                }                                                                           \
                ps = a;                                                                     \
                pe = e;                                                                     \
                float f = fac[i];                                                           \
                float *restrict o = out + i * P + p0;                                       \
                if (cl[i]) {                                                                \
                    for (Py_ssize_t p = 0; p < n; p++) {                                    \
                        float v = (float)cnt[p] * f;                                        \
                        o[p] = v > 1.0f ? 1.0f : v;                                         \
                    }                                                                       \
                } else {                                                                    \
                    for (Py_ssize_t p = 0; p < n; p++)                                      \
                        o[p] = (float)cnt[p] * f;                                           \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        if (check) {                                                                        \
            for (Py_ssize_t r = 0; r < L; r++) {                                            \
                if (done[r])                                                                \
                    continue;                                                               \
                const unsigned char *restrict sr = s + r * P;                               \
                unsigned char orv = 0;                                                      \
                for (Py_ssize_t p = 0; p < P; p++)                                          \
                    orv |= sr[p];                                                           \
                seen |= orv;                                                                \
            }                                                                               \
        }                                                                                   \
        return seen;                                                                        \
    }

/* counts in uint8 for windows of up to 255 frames (they wrap around modulo 256, but a count is
 * exact once it is complete), uint16 up to 65 535, int beyond: fewer bytes to add per frame */
INT_KERNELS(TFP_KERNEL, tfp)
typedef unsigned (*tfp_fn)(const unsigned char *, float *, const long long *, const long long *,
                           const float *, const unsigned char *, Py_ssize_t, Py_ssize_t,
                           Py_ssize_t, int, unsigned char *, void *, Py_ssize_t);

static PyObject *py_tfp(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"spikes", "out", "starts", "ends", "factor", "clamp",
                             "batch", "length", "pixels", "check", "tile", NULL};
    PyObject *so, *oo, *sto, *eno, *fo, *co;
    Py_ssize_t nb, L, P, tile = TFP_TILE;
    int check = 1;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOnnn|pn", kwlist, &so, &oo, &sto, &eno,
                                     &fo, &co, &nb, &L, &P, &check, &tile))
        return NULL;
    if (nb < 0 || L < 0 || P < 0 || tile < 1) {
        PyErr_SetString(PyExc_ValueError, "negative size or tile < 1");
        return NULL;
    }
    Py_buffer stb, enb, fb, cb, sb, ob;
    Py_ssize_t nw = -1;
    if (get_i64(sto, &stb, "starts", &nw) < 0)
        return NULL;
    if (get_i64(eno, &enb, "ends", &nw) < 0)
        goto f0;
    if (get_buf(fo, &fb, "factor", nw, 4, 'f', 0) < 0)
        goto f1;
    if (get_buf(co, &cb, "clamp", nw, 1, 0, 0) < 0)
        goto f2;
    if (get_buf(so, &sb, "spikes", nb * L * P, 1, 0, 0) < 0)
        goto f3;
    if (get_buf(oo, &ob, "out", nb * nw * P, 4, 'f', 1) < 0)
        goto f4;
    const long long *st = (const long long *)stb.buf, *en = (const long long *)enb.buf;
    long long longest = 0;
    for (Py_ssize_t i = 0; i < nw; i++) {
        longest = en[i] - st[i] + 1 > longest ? en[i] - st[i] + 1 : longest;
        if (st[i] < 0 || st[i] > en[i] || en[i] >= L) {
            PyErr_Format(PyExc_ValueError, "window %zd: frames %lld .. %lld outside 0 .. %zd",
                         i, st[i], en[i], L - 1);
            goto f5;
        }
    }
    unsigned char *done = check ? PyMem_Calloc((size_t)(L ? L : 1), 1) : NULL;
    int *cnt = PyMem_Malloc((size_t)(P < tile ? (P ? P : 1) : tile) * sizeof(int));
    if ((check && !done) || !cnt) {
        PyMem_Free(done);
        PyMem_Free(cnt);
        PyErr_NoMemory();
        goto f5;
    }
    tfp_fn kernel = longest <= 255     ? (use_avx2 ? tfp_u8_avx2 : tfp_u8)
                    : longest <= 65535 ? (use_avx2 ? tfp_u16_avx2 : tfp_u16)
                                       : (use_avx2 ? tfp_i32_avx2 : tfp_i32);
    unsigned seen = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < nb; i++) {
        if (done)
            memset(done, 0, (size_t)L);
        seen |= kernel(
            (const unsigned char *)sb.buf + i * L * P, (float *)ob.buf + i * nw * P, st, en,
            (const float *)fb.buf, (const unsigned char *)cb.buf, nw, L, P, check, done, cnt,
            tile);
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(cnt);
    PyMem_Free(done);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&fb);
    PyBuffer_Release(&enb);
    PyBuffer_Release(&stb);
    return PyLong_FromUnsignedLong(seen);
f5:
    PyBuffer_Release(&ob);
f4:
    PyBuffer_Release(&sb);
f3:
    PyBuffer_Release(&cb);
f2:
    PyBuffer_Release(&fb);
f1:
    PyBuffer_Release(&enb);
f0:
    PyBuffer_Release(&stb);
    return NULL;
}

/* ---------------------------------------------------------------- TFI
 * out[i] = v / d at the centre c[i] (relative frame numbers 1..L), d = next' - prev' with prev'
 * the last spike in lo[i] .. c[i] (lo[i] - 1 if none) and next' the first in c[i] + 1 .. hi[i]
 * (hi[i] + 1 if none); 0 where neither side has a spike (d is then hi - lo + 2): the numpy
 * kernel's arithmetic (v / float32(d)). A forward scan over a tile of pixels keeps the last
 * spike and stores it at each centre, a backward scan keeps L + 1 - the first spike after and
 * finishes each output as it passes the centre. Indices are uint8 for streams of up to 254
 * frames, uint16 up to 65 534, int beyond. Repeated centres copy the first one's output. */
#define TFI_KERNEL(NAME, ATTR, IDX)                                                         \
    ATTR static void NAME(const unsigned char *s, float *out, const long long *lo,          \
                          const long long *hi, float v, Py_ssize_t L, Py_ssize_t P,         \
                          Py_ssize_t tile, const Py_ssize_t *slot_of, const Py_ssize_t *first, \
                          const Py_ssize_t *next_same, void *prev_buf, void *state_buf,     \
                          long long r_from, long long r_last, long long r_top,              \
                          long long r_to)                                                   \
    {                                                                                       \
        IDX *restrict prev = (IDX *)prev_buf;                                               \
        IDX *restrict st = (IDX *)state_buf;                                                \
        for (Py_ssize_t p0 = 0; p0 < P; p0 += tile) {                                       \
            Py_ssize_t n = P - p0 < tile ? P - p0 : tile;                                   \
            memset(st, 0, (size_t)n * sizeof(IDX));                                         \
            for (long long r = r_from; r <= r_last; r++) {                                  \
                const unsigned char *restrict sr = s + (r - 1) * P + p0;                    \
                IDX rv = (IDX)r;                                                            \
                for (Py_ssize_t p = 0; p < n; p++)                                          \
                    st[p] = sr[p] ? rv : st[p];                                             \
                if (slot_of[r] >= 0)                                                        \
                    memcpy(prev + slot_of[r] * n, st, (size_t)n * sizeof(IDX));             \
            }                                                                               \
            memset(st, 0, (size_t)n * sizeof(IDX));                                         \
            for (long long r = r_top + 1; r >= r_to; r--) {                                 \
                if (r <= r_top) {                                                           \
                    const unsigned char *restrict sr = s + (r - 1) * P + p0;                \
                    IDX rv = (IDX)(L + 1 - r);                                              \
                    for (Py_ssize_t p = 0; p < n; p++)                                      \
                        st[p] = sr[p] ? rv : st[p];                                         \
                }                                                                           \
                /* finish the centres r - 1, and those past the last searched frame */      \
                for (long long c = (r == r_top + 1 ? L : r - 1); c >= r - 1; c--) {         \
                    Py_ssize_t i = c >= 1 ? first[c] : -1;                                  \
                    if (i < 0)                                                              \
                        continue;                                                           \
                    const IDX *restrict pr = prev + slot_of[c] * n;                         \
                    int lo1 = (int)lo[i] - 1, lim = (int)(L - hi[i]);                       \
                    int top = (int)L + 1, dmax = (int)(hi[i] - lo[i] + 2);                  \
                    float *restrict o = out + i * P + p0;                                   \
                    for (Py_ssize_t p = 0; p < n; p++) {                                    \
                        int a = pr[p] > lo1 ? pr[p] : lo1;                                  \
                        int b = st[p] > lim ? st[p] : lim;                                  \
                        int d = top - b - a;                                                \
                        o[p] = d == dmax ? 0.0f : v / (float)d;                             \
                    }                                                                       \
                    for (Py_ssize_t j = next_same[i]; j >= 0; j = next_same[j])             \
                        memcpy(out + j * P + p0, o, (size_t)n * sizeof(float));             \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }

INT_KERNELS(TFI_KERNEL, tfi)
typedef void (*tfi_fn)(const unsigned char *, float *, const long long *, const long long *,
                       float, Py_ssize_t, Py_ssize_t, Py_ssize_t, const Py_ssize_t *,
                       const Py_ssize_t *, const Py_ssize_t *, void *, void *, long long,
                       long long, long long, long long);

/* the index scratch of all centres stays under this (smaller tiles of pixels beyond) */
#define TFI_SCRATCH (64 << 20)

static PyObject *py_tfi(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"spikes", "out", "centers", "lo", "hi", "v", "batch", "length",
                             "pixels", "tile", NULL};
    PyObject *so, *oo, *co, *loo, *hio, *vo;
    Py_ssize_t nb, L, P, tile = 1 << 20;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOnnn|n", kwlist, &so, &oo, &co, &loo, &hio,
                                     &vo, &nb, &L, &P, &tile))
        return NULL;
    if (nb < 0 || L < 1 || P < 0 || tile < 1) {
        PyErr_SetString(PyExc_ValueError, "bad sizes (length >= 1, tile >= 1)");
        return NULL;
    }
    Py_buffer cb, lb, hb, vb, sb, ob;
    Py_ssize_t nw = -1;
    if (get_i64(co, &cb, "centers", &nw) < 0)
        return NULL;
    if (get_i64(loo, &lb, "lo", &nw) < 0)
        goto g0;
    if (get_i64(hio, &hb, "hi", &nw) < 0)
        goto g1;
    if (get_buf(vo, &vb, "v", nb, 4, 'f', 0) < 0)
        goto g2;
    if (get_buf(so, &sb, "spikes", nb * L * P, 1, 0, 0) < 0)
        goto g3;
    if (get_buf(oo, &ob, "out", nb * nw * P, 4, 'f', 1) < 0)
        goto g4;
    const long long *c = (const long long *)cb.buf, *lo = (const long long *)lb.buf,
                    *hi = (const long long *)hb.buf;
    long long r_from = L, r_last = 1, r_top = 1, r_to = L + 1;
    for (Py_ssize_t i = 0; i < nw; i++) {
        if (!(1 <= lo[i] && lo[i] <= c[i] && c[i] <= hi[i] && hi[i] <= L)) {
            PyErr_Format(PyExc_ValueError,
                         "output %zd: need 1 <= lo <= centre <= hi <= %zd, got %lld, %lld, %lld",
                         i, L, lo[i], c[i], hi[i]);
            goto g5;
        }
        r_from = lo[i] < r_from ? lo[i] : r_from;
        r_last = c[i] > r_last ? c[i] : r_last;
        r_top = hi[i] > r_top ? hi[i] : r_top;
        r_to = c[i] + 1 < r_to ? c[i] + 1 : r_to;
    }
    if (nw == 0)
        goto done;
    /* per relative frame r (1..L): the slot of its stored forward state, the first output
     * with centre r; per output the next one with the same centre */
    Py_ssize_t *slot_of = PyMem_Malloc((size_t)(L + 2) * sizeof(Py_ssize_t));
    Py_ssize_t *first = PyMem_Malloc((size_t)(L + 2) * sizeof(Py_ssize_t));
    Py_ssize_t *next_same = PyMem_Malloc((size_t)nw * sizeof(Py_ssize_t));
    Py_ssize_t *last = PyMem_Malloc((size_t)(L + 2) * sizeof(Py_ssize_t));
    if (!slot_of || !first || !next_same || !last) {
        PyErr_NoMemory();
        goto g6;
    }
    for (Py_ssize_t r = 0; r < L + 2; r++)
        slot_of[r] = first[r] = last[r] = -1;
    Py_ssize_t nu = 0;
    for (Py_ssize_t i = 0; i < nw; i++) {
        next_same[i] = -1;
        if (first[c[i]] < 0) {
            first[c[i]] = i;
            slot_of[c[i]] = nu++;
        } else {
            next_same[last[c[i]]] = i;
        }
        last[c[i]] = i;
    }
    size_t isz = L + 1 <= 255 ? 1 : (L + 1 <= 65535 ? 2 : 4);
    Py_ssize_t fit = (Py_ssize_t)(TFI_SCRATCH / ((size_t)nu * isz));
    fit = fit < 4096 ? 4096 : fit;
    tile = tile < fit ? tile : fit;
    tile = P < tile ? (P ? P : 1) : tile;
    void *prev = PyMem_Malloc((size_t)nu * (size_t)tile * isz);
    void *state = PyMem_Malloc((size_t)tile * isz);
    if (!prev || !state) {
        PyMem_Free(prev);
        PyMem_Free(state);
        PyErr_NoMemory();
        goto g6;
    }
    tfi_fn kernel = isz == 1 ? (use_avx2 ? tfi_u8_avx2 : tfi_u8)
                  : isz == 2 ? (use_avx2 ? tfi_u16_avx2 : tfi_u16)
                             : (use_avx2 ? tfi_i32_avx2 : tfi_i32);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < nb; i++)
        kernel((const unsigned char *)sb.buf + i * L * P, (float *)ob.buf + i * nw * P, lo, hi,
               ((const float *)vb.buf)[i], L, P, tile, slot_of, first, next_same, prev, state,
               r_from, r_last, r_top, r_to);
    Py_END_ALLOW_THREADS
    PyMem_Free(prev);
    PyMem_Free(state);
    PyMem_Free(slot_of);
    PyMem_Free(first);
    PyMem_Free(next_same);
    PyMem_Free(last);
done:
    PyBuffer_Release(&ob);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&hb);
    PyBuffer_Release(&lb);
    PyBuffer_Release(&cb);
    Py_RETURN_NONE;
g6:
    PyMem_Free(slot_of);
    PyMem_Free(first);
    PyMem_Free(next_same);
    PyMem_Free(last);
g5:
    PyBuffer_Release(&ob);
g4:
    PyBuffer_Release(&sb);
g3:
    PyBuffer_Release(&vb);
g2:
    PyBuffer_Release(&hb);
g1:
    PyBuffer_Release(&lb);
g0:
    PyBuffer_Release(&cb);
    return NULL;
}

/* ---------------------------------------------------------------- .dat unpacking
 * Frames of packed rows (least significant bit first) into one byte per pixel, rows flipped
 * when asked, the first `row_out` bytes of each `row_in`-byte row: one pass over the output,
 * 8 output bytes per packed byte from a table (what np.unpackbits(bitorder="little") gives). */
static unsigned char bit_table[256][8];

/* one row: n packed bytes into 8 n bytes */
static void unpack_row(const unsigned char *r, unsigned char *o, Py_ssize_t n)
{
    for (Py_ssize_t j = 0; j < n; j++)
        memcpy(o + 8 * j, bit_table[r[j]], 8);
}

#ifdef HAVE_AVX2
#include <immintrin.h>
/* AVX2: 4 packed bytes a step, each byte spread over 8 lanes by a shuffle, masked with its own
 * bit and clamped to 0 / 1 (about 3x the table's speed, near the memory's) */
__attribute__((target("avx2"))) static void unpack_row_avx2(const unsigned char *r,
                                                            unsigned char *o, Py_ssize_t n)
{
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64,
                                          -128, 1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16,
                                          32, 64, -128);
    const __m256i one = _mm256_set1_epi8(1);
    Py_ssize_t j = 0;
    for (; j + 4 <= n; j += 4) {
        int word;
        memcpy(&word, r + j, 4);
        __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(word), spread);
        v = _mm256_min_epu8(_mm256_and_si256(v, bits), one);
        _mm256_storeu_si256((__m256i *)(o + 8 * j), v);
    }
    unpack_row(r + j, o + 8 * j, n - j);
}
#else
#define unpack_row_avx2 unpack_row
#endif

static void unpack_rows(const unsigned char *raw, unsigned char *out, Py_ssize_t frames,
                        Py_ssize_t height, Py_ssize_t row_in, Py_ssize_t row_out, int flip)
{
    void (*row)(const unsigned char *, unsigned char *, Py_ssize_t) =
        use_avx2 ? unpack_row_avx2 : unpack_row;
    for (Py_ssize_t f = 0; f < frames; f++) {
        const unsigned char *src = raw + f * height * row_in;
        unsigned char *dst = out + f * height * row_out * 8;
        for (Py_ssize_t y = 0; y < height; y++)
            row(src + (flip ? height - 1 - y : y) * row_in, dst + y * row_out * 8, row_out);
    }
}

static PyObject *py_unpack_rows(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"raw", "out", "frames", "height", "row_in", "row_out", "flip", NULL};
    PyObject *ro, *oo;
    Py_ssize_t nf, h, ri, rout;
    int flip = 1;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOnnnn|p", kwlist, &ro, &oo, &nf, &h, &ri,
                                     &rout, &flip))
        return NULL;
    if (nf < 0 || h < 0 || ri < 0 || rout < 0 || rout > ri) {
        PyErr_SetString(PyExc_ValueError, "bad sizes (0 <= row_out <= row_in)");
        return NULL;
    }
    Py_buffer rb, ob;
    if (get_buf(ro, &rb, "raw", nf * h * ri, 1, 0, 0) < 0)
        return NULL;
    if (get_buf(oo, &ob, "out", nf * h * rout * 8, 1, 0, 1) < 0) {
        PyBuffer_Release(&rb);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    unpack_rows((const unsigned char *)rb.buf, (unsigned char *)ob.buf, nf, h, ri, rout, flip);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&ob);
    PyBuffer_Release(&rb);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"integrate_and_fire", (PyCFunction)(void (*)(void))py_integrate_and_fire,
     METH_VARARGS | METH_KEYWORDS,
     "integrate_and_fire(x, state, out, start, scale, offset, batch, steps, pixels, static=False,"
     " check=True) -> bool\n\n"
     "Integrate-and-fire over C-contiguous buffers: x [B, T, P] (or [B, P] with static=True),\n"
     "state [B, P] float32 / float64 (updated), out [B, T, P] of 1-byte items (filled), start\n"
     "[B, P] or None (the first step reads it instead of state), scale None, a number or\n"
     "[B, P], offset None or [B, P] (with a [B, P] scale). Returns False when check is on and\n"
     "an input value is NaN, infinite or negative (the loop stops there)."},
    {"tfp", (PyCFunction)(void (*)(void))py_tfp, METH_VARARGS | METH_KEYWORDS,
     "tfp(spikes, out, starts, ends, factor, clamp, batch, length, pixels, check=True,\n"
     "    tile=2**20) -> int\n\n"
     "Windowed spike counts: spikes [B, L, P] of 1-byte items, out [B, N, P] float32 (filled\n"
     "with float32(count of frames starts[i] .. ends[i]) * factor[i], clamped to 1 where\n"
     "clamp[i]), starts / ends int64 [N], factor float32 [N], clamp [N] 1-byte. Returns the OR\n"
     "of all spike values with check (above 1: not binary), else 0. tile: pixels per tile."},
    {"tfi", (PyCFunction)(void (*)(void))py_tfi, METH_VARARGS | METH_KEYWORDS,
     "tfi(spikes, out, centers, lo, hi, v, batch, length, pixels, tile=2**20)\n\n"
     "Texture from interval: spikes [B, L, P] of 0 / 1 bytes, out [B, N, P] float32 (filled),\n"
     "centers / lo / hi int64 [N] relative frame numbers 1..L (the searched range of each\n"
     "output), v float32 [B]: v / (next - prev), 0 where no spike lies in lo .. hi."},
    {"unpack_rows", (PyCFunction)(void (*)(void))py_unpack_rows, METH_VARARGS | METH_KEYWORDS,
     "unpack_rows(raw, out, frames, height, row_in, row_out, flip=True)\n\n"
     "Packed .dat frames (raw: frames * height * row_in bytes, bits least significant first)\n"
     "into out (frames * height * row_out * 8 bytes of 0 / 1): the first row_out bytes of\n"
     "each row, rows upside down with flip."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "spikegen._native",
    "Optional fused CPU loops for spikegen's spike kernels (bit-identical to the numpy ones).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
#ifdef HAVE_AVX2
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") != 0;
#endif
    for (int b = 0; b < 256; b++)
        for (int k = 0; k < 8; k++)
            bit_table[b][k] = (unsigned char)((b >> k) & 1);
    PyObject *m = PyModule_Create(&module);
    PyObject *hash = PyLong_FromUnsignedLongLong(SOURCE_HASH);
    if (m && (!hash || PyModule_AddIntConstant(m, "ABI_VERSION", ABI_VERSION) < 0 ||
              PyModule_AddStringConstant(m, "SIMD", use_avx2 ? "avx2" : "baseline") < 0 ||
              PyModule_AddObject(m, "SOURCE_HASH", hash) < 0)) {
        Py_XDECREF(hash);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
