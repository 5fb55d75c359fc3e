/* The anchor index's per-event loop in C (detections/sigma/index.py, AnchorIndex.hit_mask), and
 * what it and the predicates run on: Automaton (a field's keys as a DFA), ValueCache (a field's
 * value -> mask cache) and LowerContext (MatchContext's base, whose __missing__ lower-cases in C).
 *
 * hit_mask(fields, tables, miss, ctx, masks, seen_limit, masks_limit) -> int
 *
 *   fields  the event's fields: a dict, or the mappingproxy an Event keeps them behind
 *   tables  field name -> (seen, equal, automaton, start, end, stand_in, grams, in_c, pairs, dfa) for every
 *           field an anchor looks at:
 *             seen       ValueCache (below) or dict: value as sent -> its mask (the cache; text values only)
 *             equal      dict: lower-cased value -> mask of its equality anchors, or None
 *             automaton  ahocorasick.Automaton of the prefix / suffix / substring anchors whose
 *                        values are masks (prefix keys start with `start`, suffix keys end with
 *                        `end`), or None
 *             start, end, stand_in
 *                        one-character strings: the value marks and what replaces them in a value
 *             grams      tuple of substrings one of which a value must contain for the automaton
 *                        to find anything, or None
 *             in_c       False when the field also has numeric anchors: such values go to `miss`
 *             pairs      8,192 bytes: bit (a << 8 | b) set when some gram starts with the characters
 *                        a, b in some case (upper or lower); None when a gram is not ASCII
 *             dfa        the same keys as `automaton` as an Automaton (below): searches ASCII values,
 *                        `automaton` the others; or None
 *   miss    called as miss(ctx, name, value) for a value the loop does not handle (not cached and
 *           not a text value of an in_c field); returns its mask and caches it itself
 *   masks   dict interning equal masks (mask -> the one object kept)
 *
 * The Python implementation (AnchorIndex._value_mask and the loop in hit_mask) is the
 * specification: for a text value this computes exactly what it computes, caches it the same
 * way (clearing a field's cache when it holds seen_limit values, the interning dict at
 * masks_limit), and the tests run both on the same inputs.  Nothing here writes to `fields`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The layout of a mappingproxy (Objects/descrobject.c, unchanged since Python 3.3): events keep
   their fields behind one; the loop only reads the dict it wraps. */
typedef struct {
    PyObject_HEAD
    PyObject *mapping;
} proxy_object;

/* The value lower-cased as str.lower() does: ASCII in C, anything else through str.lower(). */
static PyObject *
lowered(PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text)) {
        return PyObject_CallMethod(text, "lower", NULL);
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    PyObject *out = PyUnicode_New(length, 127);
    if (out == NULL) {
        return NULL;
    }
    const Py_UCS1 *in = PyUnicode_1BYTE_DATA(text);
    Py_UCS1 *to = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS1 c = in[i];
        to[i] = (c >= 'A' && c <= 'Z') ? (Py_UCS1)(c + 32) : c;
    }
    return out;
}

/* An OR of masks (non-negative ints) being accumulated.  An OR of two Python ints allocates a
   third, and the masks of the big indexes run to thousands of bits, so on CPython 3.11 the
   digits are OR-ed into one buffer and the int is made once; on other versions (whose int
   layout differs) it falls back to PyNumber_Or. */
#if PY_VERSION_HEX < 0x030C0000 && !defined(Py_LIMITED_API)
#define DIGIT_BUFFER 1
#define STACK_DIGITS 512
typedef struct {
    digit *digits;
    Py_ssize_t used, capacity;
    digit stack[STACK_DIGITS];
} accumulator;

static void
acc_init(accumulator *acc)
{
    acc->digits = acc->stack;
    acc->used = 0;
    acc->capacity = STACK_DIGITS;
}

static void
acc_free(accumulator *acc)
{
    if (acc->digits != acc->stack) {
        PyMem_Free(acc->digits);
    }
    acc->digits = acc->stack;
}

static int
acc_or(accumulator *acc, PyObject *mask)
{
    Py_ssize_t size = Py_SIZE(mask);
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "hit_mask: a mask is negative");
        return -1;
    }
    if (size > acc->capacity) {
        Py_ssize_t capacity = size * 2;
        digit *grown = PyMem_Malloc((size_t)capacity * sizeof(digit));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(grown, acc->digits, (size_t)acc->used * sizeof(digit));
        if (acc->digits != acc->stack) {
            PyMem_Free(acc->digits);
        }
        acc->digits = grown;
        acc->capacity = capacity;
    }
    if (size > acc->used) {
        memset(acc->digits + acc->used, 0, (size_t)(size - acc->used) * sizeof(digit));
        acc->used = size;
    }
    const digit *from = ((PyLongObject *)mask)->ob_digit;
    for (Py_ssize_t i = 0; i < size; i++) {
        acc->digits[i] |= from[i];
    }
    return 0;
}

static PyObject *
acc_result(accumulator *acc)
{
    Py_ssize_t used = acc->used;
    while (used > 0 && acc->digits[used - 1] == 0) {
        used--;
    }
    if (used == 0) {
        return PyLong_FromLong(0);
    }
    PyLongObject *out = _PyLong_New(used);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out->ob_digit, acc->digits, (size_t)used * sizeof(digit));
    return (PyObject *)out;
}
#else
typedef struct {
    PyObject *value;
} accumulator;

static void
acc_init(accumulator *acc)
{
    acc->value = NULL;
}

static void
acc_free(accumulator *acc)
{
    Py_CLEAR(acc->value);
}

static int
acc_or(accumulator *acc, PyObject *mask)
{
    if (acc->value == NULL) {
        acc->value = Py_NewRef(mask);
        return 0;
    }
    PyObject *next = PyNumber_Or(acc->value, mask);
    if (next == NULL) {
        return -1;
    }
    Py_SETREF(acc->value, next);
    return 0;
}

static PyObject *
acc_result(accumulator *acc)
{
    return acc->value == NULL ? PyLong_FromLong(0) : Py_NewRef(acc->value);
}
#endif

/* ------------------------------------------------------------------ the compiled automaton
 *
 * Automaton(keys, start, end, stand_in): an Aho-Corasick automaton over the ASCII keys of a
 * field, made into a full transition table (a DFA) over character classes, whose states carry
 * the OR of the masks of every key that ends there (its own and its suffixes').  It answers
 * what the field's pyahocorasick automaton answers for an ASCII value -- the OR of the masks
 * of the keys found in start + value.lower() (marks replaced by stand_in) + end -- without
 * making the searched string, lower-casing the value or a tuple per match: upper-case letters
 * share their lower-case letter's class, a mark inside the value takes the stand-in's class,
 * and each distinct output mask is OR-ed once per value.  Keys with a non-ASCII character
 * cannot occur in an ASCII value and are left out; non-ASCII values take the pyahocorasick
 * path.
 */
typedef struct {
    PyObject_HEAD
    Py_ssize_t states;
    int classes;
    int start_class, end_class;
    unsigned char text_class[128]; /* class of a value's character (case-folded, marks as stand-in) */
    int32_t *delta;                /* states x classes: the next state */
    int32_t *out;                  /* per state: index into outputs, or -1 */
    PyObject *outputs;             /* tuple of the distinct output masks (ints) */
    uint32_t *stamp;               /* per output: the search that last OR-ed it */
    uint32_t search;
} automaton_object;

static void
automaton_dealloc(automaton_object *self)
{
    PyMem_Free(self->delta);
    PyMem_Free(self->out);
    PyMem_Free(self->stamp);
    Py_XDECREF(self->outputs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
one_ascii_char(PyObject *text, const char *what, unsigned char *out)
{
    if (!PyUnicode_CheckExact(text) || PyUnicode_GET_LENGTH(text) != 1 || !PyUnicode_IS_ASCII(text)) {
        PyErr_Format(PyExc_ValueError, "Automaton: %s must be one ASCII character", what);
        return -1;
    }
    *out = PyUnicode_1BYTE_DATA(text)[0];
    return 0;
}

/* Make room for `need` states (rows of -1). */
static int
grow_rows(int32_t **delta, PyObject ***masks, Py_ssize_t *capacity, Py_ssize_t need, int classes)
{
    if (need <= *capacity) {
        return 0;
    }
    Py_ssize_t grown = *capacity * 2 > need ? *capacity * 2 : need;
    int32_t *rows = PyMem_Realloc(*delta, (size_t)grown * (size_t)classes * sizeof(int32_t));
    if (rows == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *delta = rows;
    memset(rows + *capacity * classes, 0xff, (size_t)(grown - *capacity) * (size_t)classes * sizeof(int32_t));
    PyObject **more = PyMem_Realloc(*masks, (size_t)grown * sizeof(PyObject *));
    if (more == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *masks = more;
    memset(more + *capacity, 0, (size_t)(grown - *capacity) * sizeof(PyObject *));
    *capacity = grown;
    return 0;
}

static PyObject *
automaton_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"keys", "start", "end", "stand_in", NULL};
    PyObject *keys, *start, *end, *stand_in;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OUUU:Automaton", names, &keys, &start, &end, &stand_in)) {
        return NULL;
    }
    unsigned char start_char, end_char, stand_char;
    if (one_ascii_char(start, "start", &start_char) < 0 || one_ascii_char(end, "end", &end_char) < 0 ||
        one_ascii_char(stand_in, "stand_in", &stand_char) < 0) {
        return NULL;
    }
    if (start_char == end_char || start_char == stand_char || end_char == stand_char) {
        PyErr_SetString(PyExc_ValueError, "Automaton: start, end and stand_in must differ");
        return NULL;
    }
    PyObject *items = PySequence_Fast(keys, "Automaton: keys must be a sequence of (str, int) pairs");
    if (items == NULL) {
        return NULL;
    }
    /* classes: 0 for characters in no key, then one per character the ASCII keys use */
    unsigned char key_class[128] = {0};
    int classes = 1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(items, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(pair, 0)) ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(pair, 1)) || Py_SIZE(PyTuple_GET_ITEM(pair, 1)) < 0 ||
            PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(pair, 0)) == 0) {
            Py_DECREF(items);
            PyErr_Format(PyExc_TypeError, "Automaton: key %zd is not a (non-empty str, non-negative int) pair", i);
            return NULL;
        }
        PyObject *key = PyTuple_GET_ITEM(pair, 0);
        if (!PyUnicode_IS_ASCII(key)) {
            continue;
        }
        const Py_UCS1 *chars = PyUnicode_1BYTE_DATA(key);
        for (Py_ssize_t k = 0; k < PyUnicode_GET_LENGTH(key); k++) {
            if (key_class[chars[k]] == 0) {
                key_class[chars[k]] = (unsigned char)classes++;
            }
        }
    }
    automaton_object *self = (automaton_object *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(items);
        return NULL;
    }
    self->classes = classes;
    self->start_class = key_class[start_char];
    self->end_class = key_class[end_char];
    for (int c = 0; c < 128; c++) {
        int lower = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        self->text_class[c] = (lower == start_char || lower == end_char) ? key_class[stand_char] : key_class[lower];
    }
    /* the trie of the ASCII keys, each state's own mask */
    Py_ssize_t capacity = 0, states = 1;
    int32_t *delta = NULL;
    PyObject **masks = NULL;
    int32_t *fail = NULL, *queue = NULL;
    PyObject *interned = NULL, *outputs = NULL;
    int failed = grow_rows(&delta, &masks, &capacity, 64, classes) < 0;
    for (Py_ssize_t i = 0; !failed && i < count; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(items, i);
        PyObject *key = PyTuple_GET_ITEM(pair, 0), *mask = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_IS_ASCII(key)) {
            continue;
        }
        const Py_UCS1 *chars = PyUnicode_1BYTE_DATA(key);
        Py_ssize_t state = 0;
        for (Py_ssize_t k = 0; !failed && k < PyUnicode_GET_LENGTH(key); k++) {
            int32_t *next = &delta[state * classes + key_class[chars[k]]];
            if (*next < 0) {
                if (states >= INT32_MAX || grow_rows(&delta, &masks, &capacity, states + 1, classes) < 0) {
                    failed = 1;
                    break;
                }
                next = &delta[state * classes + key_class[chars[k]]]; /* the rows may have moved */
                *next = (int32_t)states++;
            }
            state = *next;
        }
        if (failed) {
            break;
        }
        if (masks[state] == NULL) {
            masks[state] = Py_NewRef(mask);
        }
        else {
            PyObject *both = PyNumber_Or(masks[state], mask);
            failed = both == NULL;
            if (!failed) {
                Py_SETREF(masks[state], both);
            }
        }
    }
    /* breadth first: failure links, the outputs of suffixes, the missing transitions */
    if (!failed) {
        fail = PyMem_Calloc((size_t)states, sizeof(int32_t));
        queue = PyMem_Malloc((size_t)states * sizeof(int32_t));
        failed = fail == NULL || queue == NULL;
        if (failed) {
            PyErr_NoMemory();
        }
    }
    if (!failed) {
        Py_ssize_t head = 0, tail = 0;
        for (int c = 0; c < classes; c++) {
            int32_t child = delta[c];
            if (child < 0) {
                delta[c] = 0;
            }
            else {
                fail[child] = 0;
                queue[tail++] = child;
            }
        }
        while (!failed && head < tail) {
            int32_t state = queue[head++];
            PyObject *inherited = masks[fail[state]];
            if (inherited != NULL) {
                PyObject *both = masks[state] == NULL ? Py_NewRef(inherited) : PyNumber_Or(masks[state], inherited);
                failed = both == NULL;
                if (!failed) {
                    Py_XSETREF(masks[state], both);
                }
            }
            for (int c = 0; !failed && c < classes; c++) {
                int32_t *next = &delta[(Py_ssize_t)state * classes + c];
                int32_t fallback = delta[(Py_ssize_t)fail[state] * classes + c];
                if (*next < 0) {
                    *next = fallback;
                }
                else {
                    fail[*next] = fallback;
                    queue[tail++] = *next;
                }
            }
        }
    }
    /* each state's output: an index into the distinct masks */
    if (!failed) {
        self->out = PyMem_Malloc((size_t)states * sizeof(int32_t));
        interned = PyDict_New();
        outputs = PyList_New(0);
        failed = self->out == NULL || interned == NULL || outputs == NULL;
    }
    for (Py_ssize_t state = 0; !failed && state < states; state++) {
        self->out[state] = -1;
        if (masks[state] == NULL || Py_SIZE(masks[state]) == 0) {
            continue;
        }
        PyObject *known = PyDict_GetItemWithError(interned, masks[state]);
        if (known == NULL) {
            PyObject *number = PyErr_Occurred() ? NULL : PyLong_FromSsize_t(PyList_GET_SIZE(outputs));
            failed = number == NULL || PyDict_SetItem(interned, masks[state], number) < 0 ||
                     PyList_Append(outputs, masks[state]) < 0;
            Py_XDECREF(number);
            if (!failed) {
                self->out[state] = (int32_t)(PyList_GET_SIZE(outputs) - 1);
            }
        }
        else {
            self->out[state] = (int32_t)PyLong_AsLong(known);
        }
    }
    if (!failed) {
        self->outputs = PyList_AsTuple(outputs);
        self->stamp = PyMem_Calloc((size_t)PyList_GET_SIZE(outputs) + 1, sizeof(uint32_t));
        failed = self->outputs == NULL || self->stamp == NULL;
    }
    for (Py_ssize_t state = 0; masks != NULL && state < states; state++) {
        Py_XDECREF(masks[state]);
    }
    PyMem_Free(masks);
    PyMem_Free(fail);
    PyMem_Free(queue);
    Py_XDECREF(interned);
    Py_XDECREF(outputs);
    Py_DECREF(items);
    self->delta = delta;
    self->states = states;
    if (failed) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* OR into acc the masks of the keys found in start + an ASCII value (folded) + end. */
static int
automaton_scan(automaton_object *self, accumulator *acc, const Py_UCS1 *text, Py_ssize_t length)
{
    const int32_t *delta = self->delta, *out = self->out;
    const int classes = self->classes;
    uint32_t *stamp = self->stamp;
    uint32_t search = ++self->search;
    if (search == 0) { /* wrapped: forget every stamp */
        memset(stamp, 0, (size_t)PyTuple_GET_SIZE(self->outputs) * sizeof(uint32_t));
        search = self->search = 1;
    }
    int32_t state = delta[self->start_class];
    for (Py_ssize_t i = -1; i <= length; i++) {
        if (i >= 0) {
            int cls = i < length ? self->text_class[text[i]] : self->end_class;
            state = delta[(Py_ssize_t)state * classes + cls];
        }
        int32_t found = out[state];
        if (found >= 0 && stamp[found] != search) {
            stamp[found] = search;
            if (acc_or(acc, PyTuple_GET_ITEM(self->outputs, found)) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

static PyObject *
automaton_search(automaton_object *self, PyObject *text)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(PyExc_ValueError, "Automaton.search: the value must be an ASCII str");
        return NULL;
    }
    accumulator acc;
    acc_init(&acc);
    PyObject *mask = NULL;
    if (automaton_scan(self, &acc, PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text)) == 0) {
        mask = acc_result(&acc);
    }
    acc_free(&acc);
    return mask;
}

static PyObject *
automaton_sizeof(automaton_object *self, PyObject *unused)
{
    size_t size = sizeof(*self) + (size_t)self->states * ((size_t)self->classes + 1) * sizeof(int32_t) +
                  (size_t)PyTuple_GET_SIZE(self->outputs) * sizeof(uint32_t);
    return PyLong_FromSize_t(size);
}

static PyObject *
automaton_get_states(automaton_object *self, void *closure)
{
    return PyLong_FromSsize_t(self->states);
}

static PyMethodDef automaton_methods[] = {
    {"search", (PyCFunction)automaton_search, METH_O,
     "search(value) -> int: the OR of the masks of the keys in start + value.lower() + end (value ASCII)."},
    {"__sizeof__", (PyCFunction)automaton_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef automaton_getset[] = {
    {"states", (getter)automaton_get_states, NULL, "how many states the automaton has", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject automaton_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "detections.sigma._hitmask.Automaton",
    .tp_basicsize = sizeof(automaton_object),
    .tp_dealloc = (destructor)automaton_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Automaton(keys, start, end, stand_in): the ASCII keys (str, mask) of a field as a DFA over "
              "character classes (see detections/sigma/_hitmask.c).",
    .tp_methods = automaton_methods,
    .tp_getset = automaton_getset,
    .tp_new = automaton_new,
};

/* ------------------------------------------------------------------ the value caches
 *
 * ValueCache(): a field's value cache (AnchorIndex._seen[name]): text value -> its mask, like a
 * dict, but hashed with a fast keyed hash of the text's bytes instead of str's SipHash.  Every
 * event's values are new string objects, so a dict computes SipHash over each of them (a raw
 * record runs to kilobytes); this hash reads 16 bytes per multiplication.  Its key follows the
 * process's hash secret, and a lookup probes at most MAX_PROBE slots: values crafted to collide
 * are then simply not remembered (computed again when met again), never a slow table.  Keys
 * are exact str, values ints; only what the index needs: get, [], len, clear, items, in.
 * ValueCache(hash_mask=m) keeps only the bits m of each hash: the tests' way to make collisions.
 */
#define MAX_PROBE 32

typedef struct {
    uint64_t hash;
    PyObject *key; /* NULL: empty */
    PyObject *value;
} cache_slot;

typedef struct {
    PyObject_HEAD
    cache_slot *slots;
    Py_ssize_t capacity; /* a power of two, or 0 */
    Py_ssize_t used;
    uint64_t hash_mask; /* ANDed with every hash: all ones, or fewer bits to make collisions in tests */
} cache_object;

static PyTypeObject cache_type;

static inline uint64_t
mix(uint64_t a, uint64_t b)
{
    __uint128_t product = (__uint128_t)a * b;
    return (uint64_t)product ^ (uint64_t)(product >> 64);
}

static inline uint64_t
read64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t
read32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The hash's key: drawn from str hashes at import, so it follows the process's hash secret
   (random per process, or PYTHONHASHSEED) without reaching into CPython's private state. */
static uint64_t hash_k0 = 1, hash_k1 = 0;

/* A wyhash-style hash of the text's bytes, keyed by the process's hash secret. */
static uint64_t
text_hash(PyObject *text)
{
    int kind = PyUnicode_KIND(text);
    size_t n = (size_t)PyUnicode_GET_LENGTH(text) * (size_t)kind;
    const unsigned char *p = PyUnicode_DATA(text);
    const uint64_t k0 = hash_k0, k1 = hash_k1;
    const uint64_t p0 = 0xa0761d6478bd642full, p1 = 0xe7037ed1a0b428dbull, p2 = 0x8ebc6af09c88c6e3ull;
    uint64_t seed = k1 ^ mix(n ^ p0, k0 ^ (uint64_t)kind), a, b;
    if (n <= 16) {
        if (n >= 4) {
            a = read32(p) << 32 | read32(p + ((n >> 3) << 2));
            b = read32(p + n - 4) << 32 | read32(p + n - 4 - ((n >> 3) << 2));
        }
        else if (n > 0) {
            a = (uint64_t)p[0] << 16 | (uint64_t)p[n >> 1] << 8 | p[n - 1];
            b = 0;
        }
        else {
            a = b = 0;
        }
    }
    else {
        size_t i = n;
        if (i > 48) {
            uint64_t s1 = seed, s2 = seed;
            do {
                seed = mix(read64(p) ^ p1, read64(p + 8) ^ seed);
                s1 = mix(read64(p + 16) ^ p2, read64(p + 24) ^ s1);
                s2 = mix(read64(p + 32) ^ p0, read64(p + 40) ^ s2);
                p += 48;
                i -= 48;
            } while (i > 48);
            seed ^= s1 ^ s2;
        }
        while (i > 16) {
            seed = mix(read64(p) ^ p1, read64(p + 8) ^ seed);
            i -= 16;
            p += 16;
        }
        a = read64(p + i - 16);
        b = read64(p + i - 8);
    }
    return mix(p1 ^ n, mix(a ^ p1, b ^ seed));
}

static inline uint64_t
cache_hash(cache_object *self, PyObject *text)
{
    return text_hash(text) & self->hash_mask;
}

static int
same_text(PyObject *x, PyObject *y)
{
    if (x == y) {
        return 1;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(x);
    int kind = PyUnicode_KIND(x);
    return length == PyUnicode_GET_LENGTH(y) && kind == PyUnicode_KIND(y) &&
           memcmp(PyUnicode_DATA(x), PyUnicode_DATA(y), (size_t)length * (size_t)kind) == 0;
}

/* The slot holding key, or NULL (borrowed; key an exact str). */
static cache_slot *
cache_find(cache_object *self, PyObject *key, uint64_t hash)
{
    if (self->capacity == 0) {
        return NULL;
    }
    size_t mask = (size_t)self->capacity - 1;
    for (size_t i = (size_t)hash & mask, probes = 0; probes < MAX_PROBE; i = (i + 1) & mask, probes++) {
        cache_slot *slot = &self->slots[i];
        if (slot->key == NULL) {
            return NULL;
        }
        if (slot->hash == hash && same_text(slot->key, key)) {
            return slot;
        }
    }
    return NULL;
}

static void
cache_release(cache_object *self)
{
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Py_CLEAR(self->slots[i].key);
        Py_CLEAR(self->slots[i].value);
    }
    self->used = 0;
}

/* Put key -> value in a free slot of a table known not to hold key; 0 when its probes are all taken. */
static int
cache_place(cache_slot *slots, Py_ssize_t capacity, uint64_t hash, PyObject *key, PyObject *value)
{
    size_t mask = (size_t)capacity - 1;
    for (size_t i = (size_t)hash & mask, probes = 0; probes < MAX_PROBE; i = (i + 1) & mask, probes++) {
        if (slots[i].key == NULL) {
            slots[i].hash = hash;
            slots[i].key = key;
            slots[i].value = value;
            return 1;
        }
    }
    return 0;
}

static int
cache_grow(cache_object *self)
{
    Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 16;
    cache_slot *slots = PyMem_Calloc((size_t)capacity, sizeof(cache_slot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        cache_slot *old = &self->slots[i];
        if (old->key == NULL) {
            continue;
        }
        if (cache_place(slots, capacity, old->hash, old->key, old->value)) {
            kept++;
        }
        else { /* only crafted collisions get here: forget the value */
            Py_DECREF(old->key);
            Py_DECREF(old->value);
        }
    }
    PyMem_Free(self->slots);
    self->slots = slots;
    self->capacity = capacity;
    self->used = kept;
    return 0;
}

/* cache[key] = value (key an exact str, value an int). */
static int
cache_set(cache_object *self, PyObject *key, PyObject *value)
{
    uint64_t hash = cache_hash(self, key);
    cache_slot *slot = cache_find(self, key, hash);
    if (slot != NULL) {
        Py_SETREF(slot->value, Py_NewRef(value));
        return 0;
    }
    if ((self->used + 1) * 2 > self->capacity && cache_grow(self) < 0) {
        return -1;
    }
    if (cache_place(self->slots, self->capacity, hash, key, value)) {
        Py_INCREF(key);
        Py_INCREF(value);
        self->used++;
    }
    return 0;
}

static PyObject *
cache_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"hash_mask", NULL};
    unsigned long long hash_mask = ~0ULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$K:ValueCache", names, &hash_mask)) {
        return NULL;
    }
    cache_object *self = (cache_object *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->hash_mask = hash_mask;
    }
    return (PyObject *)self;
}

static void
cache_dealloc(cache_object *self)
{
    cache_release(self);
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t
cache_length(cache_object *self)
{
    return self->used;
}

static PyObject *
cache_subscript(cache_object *self, PyObject *key)
{
    cache_slot *slot = PyUnicode_CheckExact(key) ? cache_find(self, key, cache_hash(self, key)) : NULL;
    if (slot == NULL) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return Py_NewRef(slot->value);
}

static int
cache_ass_subscript(cache_object *self, PyObject *key, PyObject *value)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "ValueCache: values are not deleted one by one (clear())");
        return -1;
    }
    if (!PyUnicode_CheckExact(key) || !PyLong_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "ValueCache: keys are str and values int");
        return -1;
    }
    return cache_set(self, key, value);
}

static int
cache_contains(cache_object *self, PyObject *key)
{
    return PyUnicode_CheckExact(key) && cache_find(self, key, cache_hash(self, key)) != NULL;
}

static PyObject *
cache_get(cache_object *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "ValueCache.get(value, default=None)");
        return NULL;
    }
    cache_slot *slot = PyUnicode_CheckExact(args[0]) ? cache_find(self, args[0], cache_hash(self, args[0])) : NULL;
    return Py_NewRef(slot != NULL ? slot->value : nargs == 2 ? args[1] : Py_None);
}

static PyObject *
cache_clear(cache_object *self, PyObject *unused)
{
    cache_release(self);
    Py_RETURN_NONE;
}

static PyObject *
cache_items(cache_object *self, PyObject *unused)
{
    PyObject *items = PyList_New(0);
    for (Py_ssize_t i = 0; items != NULL && i < self->capacity; i++) {
        cache_slot *slot = &self->slots[i];
        if (slot->key == NULL) {
            continue;
        }
        PyObject *pair = PyTuple_Pack(2, slot->key, slot->value);
        if (pair == NULL || PyList_Append(items, pair) < 0) {
            Py_XDECREF(pair);
            Py_CLEAR(items);
            break;
        }
        Py_DECREF(pair);
    }
    return items;
}

static PyMethodDef cache_methods[] = {
    {"get", (PyCFunction)(void (*)(void))cache_get, METH_FASTCALL, "get(value, default=None): the value's mask"},
    {"clear", (PyCFunction)cache_clear, METH_NOARGS, "forget every value"},
    {"items", (PyCFunction)cache_items, METH_NOARGS, "a list of the (value, mask) pairs held"},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods cache_mapping = {
    .mp_length = (lenfunc)cache_length,
    .mp_subscript = (binaryfunc)cache_subscript,
    .mp_ass_subscript = (objobjargproc)cache_ass_subscript,
};

static PySequenceMethods cache_sequence = {
    .sq_contains = (objobjproc)cache_contains,
};

static PyTypeObject cache_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "detections.sigma._hitmask.ValueCache",
    .tp_basicsize = sizeof(cache_object),
    .tp_dealloc = (destructor)cache_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ValueCache(): a field's text value -> mask cache, hashed with a fast keyed hash (see "
              "detections/sigma/_hitmask.c).",
    .tp_methods = cache_methods,
    .tp_as_mapping = &cache_mapping,
    .tp_as_sequence = &cache_sequence,
    .tp_new = cache_new,
};

/* The cache's size, and what it holds for value (borrowed, NULL when absent; an error set when it failed). */
static Py_ssize_t
seen_size(PyObject *seen)
{
    return Py_IS_TYPE(seen, &cache_type) ? ((cache_object *)seen)->used : PyDict_GET_SIZE(seen);
}

static PyObject *
seen_get(PyObject *seen, PyObject *value)
{
    if (Py_IS_TYPE(seen, &cache_type)) {
        cache_slot *slot = cache_find((cache_object *)seen, value, cache_hash((cache_object *)seen, value));
        return slot == NULL ? NULL : slot->value;
    }
    return PyDict_GetItemWithError(seen, value);
}

static int
seen_set(PyObject *seen, PyObject *value, PyObject *mask)
{
    if (Py_IS_TYPE(seen, &cache_type)) {
        return cache_set((cache_object *)seen, value, mask);
    }
    return PyDict_SetItem(seen, value, mask);
}

static void
seen_clear(PyObject *seen)
{
    if (Py_IS_TYPE(seen, &cache_type)) {
        cache_release((cache_object *)seen);
    }
    else {
        PyDict_Clear(seen);
    }
}

/* Whether an ASCII text, lower-cased on the fly, contains one of the grams: one pass with a
   bitmap of the grams' first two characters in every case (65,536 bits, tables[...][8])
   instead of one substring search per gram.  Every gram is ASCII and at least two characters
   long. */
static int
has_gram(const Py_UCS1 *text, Py_ssize_t length, PyObject *grams, const unsigned char *pairs)
{
    for (Py_ssize_t i = 0; i + 1 < length; i++) {
        unsigned int pair = (unsigned int)text[i] << 8 | text[i + 1]; /* the map has every case of both */
        if (!(pairs[pair >> 3] & (1u << (pair & 7)))) {
            continue;
        }
        for (Py_ssize_t g = 0; g < PyTuple_GET_SIZE(grams); g++) {
            PyObject *gram = PyTuple_GET_ITEM(grams, g);
            Py_ssize_t size = PyUnicode_GET_LENGTH(gram);
            const Py_UCS1 *want = PyUnicode_1BYTE_DATA(gram);
            Py_ssize_t k = 0;
            while (k < size && i + k < length && Py_TOLOWER(text[i + k]) == want[k]) {
                k++;
            }
            if (k == size) {
                return 1;
            }
        }
    }
    return 0;
}

/* Whether a value certainly contains no gram of its field, so its automaton would find nothing. */
static int
gram_free(PyObject *table, PyObject *text)
{
    PyObject *grams = PyTuple_GET_ITEM(table, 6), *pairs = PyTuple_GET_ITEM(table, 8);
    if (grams == Py_None || !PyBytes_CheckExact(pairs) || PyBytes_GET_SIZE(pairs) != 8192 || !PyUnicode_IS_ASCII(text)) {
        return 0;
    }
    return !has_gram(PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text), grams,
                     (const unsigned char *)PyBytes_AS_STRING(pairs));
}

/* OR into acc the bits of one lower-cased text value of a field (AnchorIndex._text_mask). */
static int
text_mask(accumulator *acc, PyObject *table, PyObject *text)
{
    PyObject *equal = PyTuple_GET_ITEM(table, 1);
    PyObject *automaton = PyTuple_GET_ITEM(table, 2);
    if (equal != Py_None) {
        PyObject *found = PyDict_GetItemWithError(equal, text);
        if (found == NULL && PyErr_Occurred()) {
            return -1;
        }
        if (found != NULL && acc_or(acc, found) < 0) {
            return -1;
        }
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    if (automaton == Py_None || length == 0) {
        return 0;
    }
    PyObject *grams = PyTuple_GET_ITEM(table, 6);
    if (grams != Py_None && PyBytes_CheckExact(PyTuple_GET_ITEM(table, 8)) && PyUnicode_IS_ASCII(text)) {
        if (gram_free(table, text)) {
            return 0;
        }
    }
    else if (grams != Py_None) {
        int any = 0;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(grams) && !any; i++) {
            Py_ssize_t at = PyUnicode_Find(text, PyTuple_GET_ITEM(grams, i), 0, length, 1);
            if (at == -2) {
                return -1;
            }
            any = at >= 0;
        }
        if (!any) {
            return 0;
        }
    }
    PyObject *start = PyTuple_GET_ITEM(table, 3), *end = PyTuple_GET_ITEM(table, 4);
    PyObject *stand_in = PyTuple_GET_ITEM(table, 5);
    Py_UCS4 start_char = PyUnicode_READ_CHAR(start, 0), end_char = PyUnicode_READ_CHAR(end, 0);
    PyObject *searched = NULL, *inner = NULL;
    Py_ssize_t has_start = PyUnicode_FindChar(text, start_char, 0, length, 1);
    Py_ssize_t has_end = PyUnicode_FindChar(text, end_char, 0, length, 1);
    if (has_start == -2 || has_end == -2) {
        return -1;
    }
    if (has_start >= 0 || has_end >= 0) { /* hostile or binary content: marks only where we put them */
        PyObject *once = PyUnicode_Replace(text, start, stand_in, -1);
        inner = once == NULL ? NULL : PyUnicode_Replace(once, end, stand_in, -1);
        Py_XDECREF(once);
        if (inner == NULL) {
            return -1;
        }
    }
    else {
        inner = Py_NewRef(text);
    }
    if (PyUnicode_IS_ASCII(inner) && start_char < 128 && end_char < 128) {
        searched = PyUnicode_New(length + 2, 127);
        if (searched != NULL) {
            Py_UCS1 *to = PyUnicode_1BYTE_DATA(searched);
            to[0] = (Py_UCS1)start_char;
            memcpy(to + 1, PyUnicode_1BYTE_DATA(inner), (size_t)length);
            to[length + 1] = (Py_UCS1)end_char;
        }
    }
    else {
        PyObject *head = PyUnicode_Concat(start, inner);
        searched = head == NULL ? NULL : PyUnicode_Concat(head, end);
        Py_XDECREF(head);
    }
    Py_DECREF(inner);
    if (searched == NULL) {
        return -1;
    }
    PyObject *matches = PyObject_CallMethod(automaton, "iter", "O", searched);
    Py_DECREF(searched);
    if (matches == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(matches)) != NULL) { /* (end position, mask) per match */
        PyObject *bits = PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2 ? PyTuple_GET_ITEM(item, 1) : NULL;
        int failed = bits == NULL || !PyLong_Check(bits);
        if (failed) {
            PyErr_SetString(PyExc_TypeError, "hit_mask: an automaton value is not an int mask");
        }
        else {
            failed = acc_or(acc, bits) < 0;
        }
        Py_DECREF(item);
        if (failed) {
            Py_DECREF(matches);
            return -1;
        }
    }
    Py_DECREF(matches);
    return PyErr_Occurred() ? -1 : 0;
}

/* Whether a field table has the shape text_mask relies on (checked before a new value is searched). */
static int
table_ok(PyObject *table)
{
    for (Py_ssize_t i = 3; i <= 5; i++) {
        PyObject *mark = PyTuple_GET_ITEM(table, i);
        if (!PyUnicode_CheckExact(mark) || PyUnicode_GET_LENGTH(mark) != 1) {
            return 0;
        }
    }
    PyObject *equal = PyTuple_GET_ITEM(table, 1), *grams = PyTuple_GET_ITEM(table, 6);
    PyObject *pairs = PyTuple_GET_ITEM(table, 8);
    PyObject *dfa = PyTuple_GET_ITEM(table, 9);
    if ((equal != Py_None && !PyDict_Check(equal)) || (pairs != Py_None && !PyBytes_CheckExact(pairs)) ||
        (dfa != Py_None && !Py_IS_TYPE(dfa, &automaton_type))) {
        return 0;
    }
    if (grams != Py_None) {
        if (!PyTuple_CheckExact(grams)) {
            return 0;
        }
        for (Py_ssize_t g = 0; g < PyTuple_GET_SIZE(grams); g++) {
            PyObject *gram = PyTuple_GET_ITEM(grams, g);
            if (!PyUnicode_CheckExact(gram) || PyUnicode_GET_LENGTH(gram) < 2 ||
                (pairs != Py_None && !PyUnicode_IS_ASCII(gram))) {
                return 0;
            }
        }
    }
    return 1;
}

/* The mask of a text value (AnchorIndex._text_mask of its lower-cased text), interned in masks. */
static PyObject *
text_value(PyObject *table, PyObject *raw, PyObject *masks, Py_ssize_t masks_limit)
{
    if (!table_ok(table)) {
        PyErr_SetString(PyExc_TypeError, "hit_mask: a field table's marks, equality map, substrings, pair map or "
                                         "compiled automaton have the wrong type");
        return NULL;
    }
    accumulator acc;
    acc_init(&acc);
    int failed = 0;
    PyObject *equal = PyTuple_GET_ITEM(table, 1), *dfa = PyTuple_GET_ITEM(table, 9);
    if (dfa != Py_None && PyUnicode_IS_ASCII(raw)) { /* the compiled automaton reads the value as sent */
        if (equal != Py_None) {
            PyObject *text = lowered(raw);
            PyObject *found = text == NULL ? NULL : PyDict_GetItemWithError(equal, text);
            failed = text == NULL || (found == NULL && PyErr_Occurred()) || (found != NULL && acc_or(&acc, found) < 0);
            Py_XDECREF(text);
        }
        if (!failed && PyUnicode_GET_LENGTH(raw) > 0 && !gram_free(table, raw)) {
            failed = automaton_scan((automaton_object *)dfa, &acc, PyUnicode_1BYTE_DATA(raw), PyUnicode_GET_LENGTH(raw));
        }
    }
    else if (equal != Py_None || !gram_free(table, raw)) {
        PyObject *text = lowered(raw);
        failed = text == NULL || text_mask(&acc, table, text) < 0;
        Py_XDECREF(text);
    }
    PyObject *mask = failed ? NULL : acc_result(&acc);
    acc_free(&acc);
    if (mask == NULL || Py_SIZE(mask) == 0) {
        return mask;
    }
    if (PyDict_GET_SIZE(masks) >= masks_limit) {
        PyDict_Clear(masks);
    }
    PyObject *kept = PyDict_SetDefault(masks, mask, mask); /* borrowed */
    Py_DECREF(mask);
    return kept == NULL ? NULL : Py_NewRef(kept);
}

/* The mask of a text value not met before, cached as AnchorIndex._value_mask caches it. */
static PyObject *
new_text(PyObject *table, PyObject *raw, PyObject *masks, Py_ssize_t seen_limit, Py_ssize_t masks_limit)
{
    PyObject *mask = text_value(table, raw, masks, masks_limit);
    if (mask == NULL) {
        return NULL;
    }
    PyObject *seen = PyTuple_GET_ITEM(table, 0);
    if (seen_size(seen) >= seen_limit) {
        seen_clear(seen);
    }
    if (seen_set(seen, raw, mask) < 0) {
        Py_DECREF(mask);
        return NULL;
    }
    return mask;
}

/* One field value's mask: from the cache, computed here, or by miss(); a new reference. */
static PyObject *
value_mask(PyObject *table, PyObject *key, PyObject *value, PyObject *miss, PyObject *ctx, PyObject *masks,
           Py_ssize_t seen_limit, Py_ssize_t masks_limit)
{
    if (PyUnicode_CheckExact(value)) { /* only text values are cached */
        PyObject *found = seen_get(PyTuple_GET_ITEM(table, 0), value);
        if (found != NULL) {
            return Py_NewRef(found);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
        if (PyTuple_GET_ITEM(table, 7) == Py_True) {
            return new_text(table, value, masks, seen_limit, masks_limit);
        }
    }
    PyObject *call[3] = {ctx, key, value};
    PyObject *mask = PyObject_Vectorcall(miss, call, 3, NULL);
    if (mask != NULL && !PyLong_Check(mask)) {
        Py_SETREF(mask, NULL);
        PyErr_SetString(PyExc_TypeError, "hit_mask: miss() did not return an int mask");
    }
    return mask;
}

static PyObject *
hit_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "hit_mask(fields, tables, miss, ctx, masks, seen_limit, masks_limit) takes 7 arguments");
        return NULL;
    }
    PyObject *fields = args[0], *tables = args[1], *miss = args[2], *ctx = args[3], *masks = args[4];
    Py_ssize_t seen_limit = PyLong_AsSsize_t(args[5]), masks_limit = PyLong_AsSsize_t(args[6]);
    if ((seen_limit == -1 || masks_limit == -1) && PyErr_Occurred()) {
        return NULL;
    }
    if (Py_IS_TYPE(fields, &PyDictProxy_Type)) {
        fields = ((proxy_object *)fields)->mapping;
    }
    if (!PyDict_Check(tables) || !PyDict_Check(masks)) {
        PyErr_SetString(PyExc_TypeError, "hit_mask: tables and masks must be dicts");
        return NULL;
    }
    if (!PyDict_Check(fields)) {
        Py_RETURN_NONE; /* another kind of mapping: the Python loop reads it */
    }
    Py_INCREF(fields); /* held while Python code (miss, str.lower, the automaton) runs */
    accumulator acc;
    acc_init(&acc);
    int failed = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (!failed && PyDict_Next(fields, &pos, &key, &value)) {
        PyObject *table = PyDict_GetItemWithError(tables, key);
        if (table == NULL) {
            failed = PyErr_Occurred() != NULL;
            continue;
        }
        if (!PyTuple_CheckExact(table) || PyTuple_GET_SIZE(table) != 10 ||
            !(PyDict_CheckExact(PyTuple_GET_ITEM(table, 0)) || Py_IS_TYPE(PyTuple_GET_ITEM(table, 0), &cache_type))) {
            PyErr_SetString(PyExc_TypeError, "hit_mask: a field table is not a 10-tuple starting with a dict or "
                                             "ValueCache");
            failed = 1;
            break;
        }
        Py_INCREF(key);
        Py_INCREF(value);
        Py_INCREF(table);
        PyObject *mask = value_mask(table, key, value, miss, ctx, masks, seen_limit, masks_limit);
        Py_DECREF(table);
        Py_DECREF(key);
        Py_DECREF(value);
        failed = mask == NULL || acc_or(&acc, mask) < 0;
        Py_XDECREF(mask);
    }
    Py_DECREF(fields);
    PyObject *out = failed ? NULL : acc_result(&acc);
    acc_free(&acc);
    return out;
}

/* route_key(fields, names) -> tuple: the values of the named fields (None when absent), the
   key RuleSet.match routes an event by; the same as tuple(map(fields.get, names)). */
static PyObject *
route_key(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "route_key(fields, names) takes 2 arguments");
        return NULL;
    }
    PyObject *fields = args[0], *names = args[1];
    if (Py_IS_TYPE(fields, &PyDictProxy_Type)) {
        fields = ((proxy_object *)fields)->mapping;
    }
    if (!PyTuple_CheckExact(names)) {
        PyErr_SetString(PyExc_TypeError, "route_key: names must be a tuple");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    PyObject *key = PyTuple_New(count);
    if (key == NULL) {
        return NULL;
    }
    int is_dict = PyDict_Check(fields);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value;
        if (is_dict) {
            value = PyDict_GetItemWithError(fields, PyTuple_GET_ITEM(names, i));
            if (value == NULL && PyErr_Occurred()) {
                Py_DECREF(key);
                return NULL;
            }
            Py_XINCREF(value);
        }
        else { /* another kind of mapping: its get() */
            value = PyObject_CallMethod(fields, "get", "O", PyTuple_GET_ITEM(names, i));
            if (value == NULL) {
                Py_DECREF(key);
                return NULL;
            }
        }
        PyTuple_SET_ITEM(key, i, value == NULL ? Py_NewRef(Py_None) : value);
    }
    return key;
}

/* ------------------------------------------------------------------ the per-event context
 *
 * LowerContext: the base of detections.sigma.matcher.MatchContext (a dict: field name -> the
 * field's lower-cased text, filled on first read).  Its __missing__ does in C what
 * MatchContext._lower_missing does in Python for the common case -- a text field, or one the
 * event lacks -- and hands anything else (numbers, arrays, the record's @timestamp and event.id)
 * to that Python method.  Generated predicates read every field through it; a Python
 * __missing__ call per field was a good part of evaluating a rule.
 */
static PyObject *str_event, *str_fields, *str_lower_missing;

static PyObject *
context_missing(PyObject *self, PyObject *name)
{
    if (!PyUnicode_CheckExact(name) || PyUnicode_CompareWithASCIIString(name, "@timestamp") == 0 ||
        PyUnicode_CompareWithASCIIString(name, "event.id") == 0) {
        return PyObject_CallMethodOneArg(self, str_lower_missing, name);
    }
    PyObject *event = PyObject_GetAttr(self, str_event);
    PyObject *fields = event == NULL ? NULL : PyObject_GetAttr(event, str_fields);
    Py_XDECREF(event);
    if (fields == NULL) {
        return NULL;
    }
    PyObject *mapping = Py_IS_TYPE(fields, &PyDictProxy_Type) ? ((proxy_object *)fields)->mapping : fields;
    PyObject *out = NULL;
    int slow = !PyDict_Check(mapping);
    if (!slow) {
        PyObject *value = PyDict_GetItemWithError(mapping, name); /* borrowed: fields is held */
        if (value == NULL && PyErr_Occurred()) {
            Py_DECREF(fields);
            return NULL;
        }
        if (value == NULL || value == Py_None) {
            out = Py_NewRef(Py_None);
        }
        else if (PyUnicode_CheckExact(value)) {
            out = lowered(value);
            if (out == NULL) {
                Py_DECREF(fields);
                return NULL;
            }
        }
        else {
            slow = 1;
        }
    }
    Py_DECREF(fields);
    if (slow) {
        return PyObject_CallMethodOneArg(self, str_lower_missing, name);
    }
    if (PyDict_SetItem(self, name, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyMethodDef context_methods[] = {
    {"__missing__", (PyCFunction)context_missing, METH_O,
     "__missing__(name): the field's lower-cased text, kept in the context (see MatchContext)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject context_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "detections.sigma._hitmask.LowerContext",
    .tp_basicsize = sizeof(PyDictObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, /* GC support, like the rest, inherited from dict */
    .tp_doc = "The base of MatchContext: a dict whose __missing__ lower-cases text fields in C.",
    .tp_methods = context_methods,
};

static PyMethodDef methods[] = {
    {"hit_mask", (PyCFunction)(void (*)(void))hit_mask, METH_FASTCALL,
     "hit_mask(fields, tables, miss, ctx, masks, seen_limit, masks_limit) -> int: the OR of the masks of an "
     "event's indexed field values (see detections/sigma/index.py)."},
    {"route_key", (PyCFunction)(void (*)(void))route_key, METH_FASTCALL,
     "route_key(fields, names) -> tuple: tuple(map(fields.get, names)) (see RuleSet.match)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hitmask", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__hitmask(void)
{
    PyObject *seed0 = PyUnicode_FromString("detections.sigma._hitmask key 0");
    PyObject *seed1 = PyUnicode_FromString("detections.sigma._hitmask key 1");
    Py_hash_t h0 = seed0 == NULL ? -1 : PyObject_Hash(seed0), h1 = seed1 == NULL ? -1 : PyObject_Hash(seed1);
    Py_XDECREF(seed0);
    Py_XDECREF(seed1);
    if (h0 == -1 || h1 == -1) {
        return NULL;
    }
    hash_k0 = (uint64_t)h0 | 1;
    hash_k1 = (uint64_t)h1;
    context_type.tp_base = &PyDict_Type;
    str_event = PyUnicode_InternFromString("event");
    str_fields = PyUnicode_InternFromString("fields");
    str_lower_missing = PyUnicode_InternFromString("_lower_missing");
    if (str_event == NULL || str_fields == NULL || str_lower_missing == NULL || PyType_Ready(&automaton_type) < 0 ||
        PyType_Ready(&cache_type) < 0 || PyType_Ready(&context_type) < 0) {
        return NULL;
    }
    PyObject *created = PyModule_Create(&module);
    if (created == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(created, "Automaton", (PyObject *)&automaton_type) < 0 ||
        PyModule_AddObjectRef(created, "ValueCache", (PyObject *)&cache_type) < 0 ||
        PyModule_AddObjectRef(created, "LowerContext", (PyObject *)&context_type) < 0) {
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
