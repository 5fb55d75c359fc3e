/* The anchor index's per-event loop in C (detections/sigma/index.py, AnchorIndex.hit_mask).
 *
 * hit_mask(fields, tables, miss, ctx, masks, seen_limit, masks_limit) -> int
 *
 *   fields  the event's fields: a dict, or the mappingproxy an Event keeps them behind
 *   tables  field name -> (seen, equal, automaton, start, end, stand_in, grams, in_c, pairs) for every
 *           field an anchor looks at:
 *             seen       dict: value as sent -> its mask (the cache; text values only)
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
    if ((equal != Py_None && !PyDict_Check(equal)) || (pairs != Py_None && !PyBytes_CheckExact(pairs))) {
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

/* The mask of a text value not met before, cached as AnchorIndex._value_mask caches it. */
static PyObject *
new_text(PyObject *table, PyObject *raw, PyObject *masks, Py_ssize_t seen_limit, Py_ssize_t masks_limit)
{
    if (!table_ok(table)) {
        PyErr_SetString(PyExc_TypeError, "hit_mask: a field table's marks, equality map, substrings or pair map "
                                         "have the wrong type");
        return NULL;
    }
    accumulator acc;
    acc_init(&acc);
    int failed = 0;
    if (PyTuple_GET_ITEM(table, 1) != Py_None || !gram_free(table, raw)) {
        PyObject *text = lowered(raw);
        if (text == NULL) {
            return NULL;
        }
        failed = text_mask(&acc, table, text);
        Py_DECREF(text);
    }
    PyObject *mask = failed ? NULL : acc_result(&acc);
    acc_free(&acc);
    if (mask == NULL) {
        return NULL;
    }
    PyObject *seen = PyTuple_GET_ITEM(table, 0);
    if (PyDict_GET_SIZE(seen) >= seen_limit) {
        PyDict_Clear(seen);
    }
    if (Py_SIZE(mask) != 0) {
        if (PyDict_GET_SIZE(masks) >= masks_limit) {
            PyDict_Clear(masks);
        }
        PyObject *kept = PyDict_SetDefault(masks, mask, mask); /* borrowed */
        if (kept == NULL) {
            Py_DECREF(mask);
            return NULL;
        }
        Py_SETREF(mask, Py_NewRef(kept));
    }
    if (PyDict_SetItem(seen, raw, mask) < 0) {
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
        PyObject *found = PyDict_GetItemWithError(PyTuple_GET_ITEM(table, 0), value);
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
        if (!PyTuple_CheckExact(table) || PyTuple_GET_SIZE(table) != 9 || !PyDict_Check(PyTuple_GET_ITEM(table, 0))) {
            PyErr_SetString(PyExc_TypeError, "hit_mask: a field table is not a 9-tuple starting with a dict");
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
    return PyModule_Create(&module);
}
