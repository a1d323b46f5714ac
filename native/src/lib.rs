//! `cdc_verify._native`: compiled versions of cdc-verify's hottest pure-Python functions.
//!
//! Each mirrors one Python function and must return exactly what it returns, for every
//! value; the Python caller falls back to its pure function whenever this raises
//! (src/cdc_verify/native.py chooses the path, docs/architecture.md says why). The rules
//! themselves (how a key is named, a type's name, the caps) stay in Python: they are
//! handed to the constructor, so there is one home for each.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PyString, PyTuple, PyType};

/// A node of the walk's cache: one path (as `_BELOW` caches it in core/shape.py).
struct Node {
    path: Py<PyString>,
    str_prefix: Option<Py<PyString>>, // path SEP "str" SEP: a short string's part less its value
    bool_parts: Option<(Py<PyString>, Py<PyString>)>, // path SEP "bool" SEP "true" / "false"
    typed: Vec<(Py<PyType>, Py<PyString>)>, // type -> path SEP its name
    star: Option<u32>,                // the child of list items (and of a None key)
    children: Children,
}

/// str key (by its hash; equal hashes in a short list) -> its child node.
type Children = HashMap<isize, Vec<(Py<PyString>, u32)>, BuildHasherDefault<StrHash>>;

/// Python's own (cached, randomised) hash of a str key, used as it is.
#[derive(Default)]
struct StrHash(u64);

impl Hasher for StrHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only isize keys")
    }
    fn write_isize(&mut self, i: isize) {
        self.0 = i as u64;
    }
}

const TEMP: u32 = 1 << 31; // a node made for this walk only (under a key that is no str)
const MAX_TYPED: usize = 8; // types remembered per path; more are named at each meeting

/// The cache: nodes kept across walks (index 0: the root, path ""), and this walk's others.
struct Cache {
    kept: Vec<Node>,
    temp: Vec<Node>,
}

impl Cache {
    fn node(&mut self, at: u32) -> &mut Node {
        if at & TEMP != 0 {
            &mut self.temp[(at & !TEMP) as usize]
        } else {
            &mut self.kept[at as usize]
        }
    }

    fn add(&mut self, temp: bool, path: Py<PyString>) -> u32 {
        let node = Node {
            path,
            str_prefix: None,
            bool_parts: None,
            typed: Vec::new(),
            star: None,
            children: HashMap::default(),
        };
        if temp {
            self.temp.push(node);
            (self.temp.len() - 1) as u32 | TEMP
        } else {
            self.kept.push(node);
            (self.kept.len() - 1) as u32
        }
    }
}

/// Mirrors `_walk` in src/cdc_verify/core/shape.py (without its layouts, an optimisation
/// that yields the same parts): the parts of a decoded value, and (path, value) of those
/// that carry a value, with the same caps and in the same order.
#[pyclass(frozen, module = "cdc_verify._native")]
struct ShapeWalker {
    child: Py<PyAny>, // shape._child(path, key): a key's path
    part: Py<PyAny>,  // shape._part(path, type): a valueless part
    sep: Py<PyString>,
    true_text: Py<PyString>,
    false_text: Py<PyString>,
    max_depth: u32,
    max_parts: isize,
    max_nodes: isize,
    value_chars: isize,
    max_kept: usize,
    cache: Mutex<Cache>,
}

#[pymethods]
impl ShapeWalker {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        child: Py<PyAny>,
        part: Py<PyAny>,
        sep: Py<PyString>,
        max_depth: u32,
        max_parts: isize,
        max_nodes: isize,
        value_chars: isize,
        max_kept: usize,
    ) -> Self {
        let root = PyString::new(py, "").unbind();
        let mut cache = Cache {
            kept: Vec::new(),
            temp: Vec::new(),
        };
        cache.add(false, root);
        ShapeWalker {
            child,
            part,
            sep,
            true_text: PyString::intern(py, "true").unbind(),
            false_text: PyString::intern(py, "false").unbind(),
            max_depth,
            max_parts,
            max_nodes,
            value_chars,
            max_kept,
            cache: Mutex::new(cache),
        }
    }

    /// (frozenset of parts, list of (path, value)), as `_walk` returns (set, list).
    fn walk<'py>(
        &self,
        py: Python<'py>,
        value: Bound<'py, PyAny>,
        wide: Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyFrozenSet>, Bound<'py, PyList>)> {
        if unsafe { ffi::PyAnySet_Check(wide.as_ptr()) } == 0 {
            return Err(PyRuntimeError::new_err("wide must be a set or frozenset"));
        }
        // Never wait for the cache: another thread may hold it while it runs Python code
        // (naming a key), and waiting with the GIL held would deadlock. That thread's
        // value is walked here by the pure function instead (the caller's fallback).
        let Ok(mut cache) = self.cache.try_lock() else {
            return Err(PyRuntimeError::new_err(
                "the walker is busy in another thread",
            ));
        };
        if cache.kept.len() >= self.max_kept {
            cache.kept.truncate(1); // start afresh, as `_BELOW` does past its bounds
            let root = &mut cache.kept[0];
            root.star = None;
            root.children.clear();
            root.typed.clear();
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.walk_inner(py, &mut cache, value, &wide)
        }));
        cache.temp.clear();
        match result {
            Ok(answer) => answer,
            Err(_) => Err(PyRuntimeError::new_err("native shape walk panicked")),
        }
    }
}

impl ShapeWalker {
    fn walk_inner<'py>(
        &self,
        py: Python<'py>,
        cache: &mut Cache,
        value: Bound<'py, PyAny>,
        wide: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyFrozenSet>, Bound<'py, PyList>)> {
        // A new frozenset may be filled with PySet_Add until it is handed out.
        let parts = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyFrozenSet_New(std::ptr::null_mut()))?
        }
        .cast_into::<PyFrozenSet>()?;
        let valued = PyList::empty(py);
        let mut stack: Vec<(u32, Bound<'py, PyAny>, u32)> = vec![(0, value, 0)];
        let mut budget = self.max_nodes;
        while budget > 0 && set_size(&parts) < self.max_parts {
            let Some((at, node, depth)) = stack.pop() else {
                break;
            };
            let ptr = node.as_ptr();
            let is_dict = unsafe { ffi::PyDict_CheckExact(ptr) } != 0;
            let is_seq = !is_dict
                && unsafe { ffi::PyList_CheckExact(ptr) != 0 || ffi::PyTuple_CheckExact(ptr) != 0 };
            if is_dict || is_seq {
                let part = self.typed_part(py, cache, at, &node.get_type())?;
                add(&parts, &part)?;
            } else if depth != 0 {
                continue; // only containers are put on the stack
            }
            if depth >= self.max_depth {
                continue;
            }
            let depth = depth + 1;
            if is_dict {
                for_each_item(&node, |key, item| {
                    if !self.one_more(&mut budget, &parts) {
                        return Ok(false);
                    }
                    let child = self.child_of(py, cache, at, Some(&key))?;
                    self.leaf(
                        py, cache, child, item, depth, &parts, &valued, wide, &mut stack,
                    )?;
                    Ok(true)
                })?;
            } else if is_seq {
                let child = self.child_of(py, cache, at, None)?;
                let is_list = unsafe { ffi::PyList_CheckExact(ptr) } != 0;
                let mut index: ffi::Py_ssize_t = 0;
                loop {
                    // A list is read live, as Python's iterator reads it; a tuple is fixed.
                    let item = unsafe {
                        if is_list {
                            if index >= ffi::PyList_GET_SIZE(ptr) {
                                break;
                            }
                            Bound::from_borrowed_ptr(py, ffi::PyList_GET_ITEM(ptr, index))
                        } else {
                            if index >= ffi::PyTuple_GET_SIZE(ptr) {
                                break;
                            }
                            Bound::from_borrowed_ptr(py, ffi::PyTuple_GET_ITEM(ptr, index))
                        }
                    };
                    index += 1;
                    if !self.one_more(&mut budget, &parts) {
                        break;
                    }
                    self.leaf(
                        py, cache, child, item, depth, &parts, &valued, wide, &mut stack,
                    )?;
                }
            } else {
                // a root that is no container: the one child of itself
                if !self.one_more(&mut budget, &parts) {
                    break;
                }
                self.leaf(
                    py, cache, at, node, depth, &parts, &valued, wide, &mut stack,
                )?;
            }
        }
        Ok((parts, valued))
    }

    /// Whether the walk takes one more item: within MAX_SHAPE_NODES and MAX_SHAPE_PARTS.
    fn one_more(&self, budget: &mut isize, parts: &Bound<'_, PyFrozenSet>) -> bool {
        *budget -= 1;
        *budget >= 0 && set_size(parts) < self.max_parts
    }

    /// One item of a container: containers go on the stack, leaves add their part.
    #[allow(clippy::too_many_arguments)]
    fn leaf<'py>(
        &self,
        py: Python<'py>,
        cache: &mut Cache,
        at: u32,
        item: Bound<'py, PyAny>,
        depth: u32,
        parts: &Bound<'py, PyFrozenSet>,
        valued: &Bound<'py, PyList>,
        wide: &Bound<'py, PyAny>,
        stack: &mut Vec<(u32, Bound<'py, PyAny>, u32)>,
    ) -> PyResult<()> {
        let ptr = item.as_ptr();
        unsafe {
            if ffi::PyDict_CheckExact(ptr) != 0
                || ffi::PyList_CheckExact(ptr) != 0
                || ffi::PyTuple_CheckExact(ptr) != 0
            {
                stack.push((at, item, depth));
                return Ok(());
            }
            if ffi::PyUnicode_CheckExact(ptr) != 0
                && ffi::PyUnicode_GetLength(ptr) <= self.value_chars
                && !in_wide(py, wide, &cache.node(at).path)?
            {
                let prefix = self.str_prefix(py, cache, at)?;
                let part =
                    Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_Concat(prefix.as_ptr(), ptr))?;
                add(parts, &part)?;
                let path = cache.node(at).path.bind(py).clone();
                valued.append(PyTuple::new(py, [path.into_any(), item])?)?;
                return Ok(());
            }
            if ffi::PyBool_Check(ptr) != 0 && !in_wide(py, wide, &cache.node(at).path)? {
                let truth = ptr == ffi::Py_True();
                let (when_true, when_false) = self.bool_parts(py, cache, at)?;
                add(parts, if truth { &when_true } else { &when_false })?;
                let text = if truth {
                    &self.true_text
                } else {
                    &self.false_text
                };
                let path = cache.node(at).path.bind(py).clone();
                valued.append(PyTuple::new(
                    py,
                    [path.into_any(), text.bind(py).clone().into_any()],
                )?)?;
                return Ok(());
            }
        }
        let part = self.typed_part(py, cache, at, &item.get_type())?;
        add(parts, &part)
    }

    /// The node of `key`'s child of `at` (None: of a list item), as `_child` names it.
    fn child_of(
        &self,
        py: Python<'_>,
        cache: &mut Cache,
        at: u32,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u32> {
        let temp = at & TEMP != 0;
        let key = match key {
            Some(key) if !key.is_none() => key,
            _ => {
                if let Some(star) = cache.node(at).star {
                    return Ok(star);
                }
                let path = self.named(py, cache, at, &py.None().into_bound(py))?;
                let star = cache.add(temp, path);
                cache.node(at).star = Some(star);
                return Ok(star);
            }
        };
        if unsafe { ffi::PyUnicode_CheckExact(key.as_ptr()) } == 0 {
            // Another key type is named anew each time: 1, True and 1.0 are equal keys.
            let path = self.named(py, cache, at, key)?;
            return Ok(cache.add(true, path));
        }
        let hash = key.hash()?;
        if let Some(same) = cache.node(at).children.get(&hash) {
            for (name, child) in same {
                if name.as_ptr() == key.as_ptr() || name.bind(py).as_any().eq(key)? {
                    return Ok(*child);
                }
            }
        }
        let path = self.named(py, cache, at, key)?;
        let child = cache.add(temp, path);
        let name = key.cast::<PyString>()?.clone().unbind();
        cache
            .node(at)
            .children
            .entry(hash)
            .or_default()
            .push((name, child));
        Ok(child)
    }

    fn named(
        &self,
        py: Python<'_>,
        cache: &mut Cache,
        at: u32,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyString>> {
        let parent = cache.node(at).path.clone_ref(py);
        let path = self.child.bind(py).call1((parent, key))?;
        Ok(path.cast_into::<PyString>()?.unbind())
    }

    /// `_part(path, type)`: path SEP the type's name.
    fn typed_part<'py>(
        &self,
        py: Python<'py>,
        cache: &mut Cache,
        at: u32,
        kind: &Bound<'py, PyType>,
    ) -> PyResult<Bound<'py, PyString>> {
        let node = cache.node(at);
        for (known, part) in &node.typed {
            if known.as_ptr() == kind.as_ptr() {
                return Ok(part.bind(py).clone());
            }
        }
        let path = node.path.clone_ref(py);
        let part = self
            .part
            .bind(py)
            .call1((path, kind))?
            .cast_into::<PyString>()?;
        let node = cache.node(at);
        if node.typed.len() < MAX_TYPED {
            node.typed
                .push((kind.clone().unbind(), part.clone().unbind()));
        }
        Ok(part)
    }

    fn str_prefix<'py>(
        &self,
        py: Python<'py>,
        cache: &mut Cache,
        at: u32,
    ) -> PyResult<Bound<'py, PyString>> {
        if let Some(prefix) = &cache.node(at).str_prefix {
            return Ok(prefix.bind(py).clone());
        }
        let typed = self.typed_part(py, cache, at, &py.get_type::<PyString>())?;
        let prefix = concat(py, &typed, self.sep.bind(py))?;
        cache.node(at).str_prefix = Some(prefix.clone().unbind());
        Ok(prefix)
    }

    fn bool_parts<'py>(
        &self,
        py: Python<'py>,
        cache: &mut Cache,
        at: u32,
    ) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyString>)> {
        if let Some((t, f)) = &cache.node(at).bool_parts {
            return Ok((t.bind(py).clone(), f.bind(py).clone()));
        }
        let typed = self.typed_part(py, cache, at, &py.get_type::<pyo3::types::PyBool>())?;
        let prefix = concat(py, &typed, self.sep.bind(py))?;
        let t = concat(py, &prefix, self.true_text.bind(py))?;
        let f = concat(py, &prefix, self.false_text.bind(py))?;
        cache.node(at).bool_parts = Some((t.clone().unbind(), f.clone().unbind()));
        Ok((t, f))
    }
}

/// Calls `visit` with each (key, value) of a dict, owned (it may run Python code), until
/// it returns false; an error once the dict changed size, as Python's iteration raises.
fn for_each_item<'py>(
    dict: &Bound<'py, PyAny>,
    mut visit: impl FnMut(Bound<'py, PyAny>, Bound<'py, PyAny>) -> PyResult<bool>,
) -> PyResult<()> {
    let (py, ptr) = (dict.py(), dict.as_ptr());
    let size = unsafe { ffi::PyDict_Size(ptr) };
    let mut pos: ffi::Py_ssize_t = 0;
    let mut key: *mut ffi::PyObject = std::ptr::null_mut();
    let mut value: *mut ffi::PyObject = std::ptr::null_mut();
    while unsafe { ffi::PyDict_Next(ptr, &mut pos, &mut key, &mut value) } != 0 {
        let (key, value) = unsafe {
            (
                Bound::from_borrowed_ptr(py, key),
                Bound::from_borrowed_ptr(py, value),
            )
        };
        if !visit(key, value)? {
            break;
        }
        if unsafe { ffi::PyDict_Size(ptr) } != size {
            return Err(PyRuntimeError::new_err(
                "dictionary changed size during iteration",
            ));
        }
    }
    Ok(())
}

fn concat<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyString>,
    b: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyString>> {
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_Concat(a.as_ptr(), b.as_ptr())) }?
        .cast_into::<PyString>()
        .map_err(Into::into)
}

fn set_size(parts: &Bound<'_, PyFrozenSet>) -> isize {
    unsafe { ffi::PySet_Size(parts.as_ptr()) }
}

fn add(parts: &Bound<'_, PyFrozenSet>, part: &Bound<'_, impl Sized>) -> PyResult<()> {
    if unsafe { ffi::PySet_Add(parts.as_ptr(), part.as_ptr()) } < 0 {
        return Err(PyErr::fetch(parts.py()));
    }
    Ok(())
}

fn in_wide(py: Python<'_>, wide: &Bound<'_, PyAny>, path: &Py<PyString>) -> PyResult<bool> {
    match unsafe { ffi::PySet_Contains(wide.as_ptr(), path.as_ptr()) } {
        -1 => Err(PyErr::fetch(py)),
        found => Ok(found == 1),
    }
}

/// Mirrors `_same_types` in src/cdc_verify/core/diff.py: whether two values that compare
/// equal also have the same types throughout. It raises where the pure function would
/// (a missing key, lists of other lengths), on a value other than a dict, list or tuple
/// (the pure function's isinstance(Mapping) needs Python), and past MAX_SAME_DEPTH levels
/// (Python's stack would overflow first): the caller then runs the pure function.
#[pyfunction]
fn same_types(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
    let kind = unsafe { ffi::Py_TYPE(a.as_ptr()) };
    if kind != unsafe { ffi::Py_TYPE(b.as_ptr()) } {
        return Ok(false);
    }
    if !is_container(a.as_ptr()) {
        return Err(PyRuntimeError::new_err(
            "not a dict, list or tuple: the pure check",
        ));
    }
    same_containers(a, b, 0)
}

const MAX_SAME_DEPTH: u32 = 400;

fn is_container(ptr: *mut ffi::PyObject) -> bool {
    unsafe {
        ffi::PyDict_CheckExact(ptr) != 0
            || ffi::PyList_CheckExact(ptr) != 0
            || ffi::PyTuple_CheckExact(ptr) != 0
    }
}

/// Two dicts, lists or tuples of one type: their items' types, the same throughout.
fn same_containers(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, depth: u32) -> PyResult<bool> {
    if depth >= MAX_SAME_DEPTH {
        return Err(PyRuntimeError::new_err("nested too deep: the pure check"));
    }
    let py = a.py();
    let same_item = |va: &Bound<'_, PyAny>, vb: &Bound<'_, PyAny>| -> PyResult<bool> {
        let tv = unsafe { ffi::Py_TYPE(va.as_ptr()) };
        if tv != unsafe { ffi::Py_TYPE(vb.as_ptr()) } {
            return Ok(false);
        }
        if is_container(va.as_ptr()) {
            return same_containers(va, vb, depth + 1);
        }
        Ok(true)
    };
    let ptr = a.as_ptr();
    if unsafe { ffi::PyDict_CheckExact(ptr) } != 0 {
        let mut same = true;
        for_each_item(a, |key, va| {
            let found = unsafe { ffi::PyDict_GetItemWithError(b.as_ptr(), key.as_ptr()) };
            if found.is_null() {
                return Err(PyErr::take(py)
                    .unwrap_or_else(|| pyo3::exceptions::PyKeyError::new_err("missing key")));
            }
            same = same_item(&va, &unsafe { Bound::from_borrowed_ptr(py, found) })?;
            Ok(same)
        })?;
        return Ok(same);
    }
    // A list or a tuple (the types are equal): zip(strict=True) over the two.
    let (a_len, b_len) = (a.len()?, b.len()?);
    if a_len != b_len {
        return Err(PyRuntimeError::new_err(
            "lengths differ: the pure check raises",
        ));
    }
    let item = |seq: &Bound<'_, PyAny>, index: usize| -> PyResult<Bound<'_, PyAny>> {
        // Owned, and from the list as it is now (a key's __eq__ may have changed it).
        let at = index as ffi::Py_ssize_t;
        unsafe {
            let found = if ffi::PyList_CheckExact(seq.as_ptr()) != 0 {
                ffi::PyList_GetItem(seq.as_ptr(), at)
            } else {
                ffi::PyTuple_GetItem(seq.as_ptr(), at)
            };
            Bound::from_borrowed_ptr_or_err(py, found)
        }
    };
    for index in 0..a_len {
        if !same_item(&item(a, index)?, &item(b, index)?)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Mirrors `from_reply(side, entry_id, fields)` (src/cdc_verify/core/entry.py, no
/// envelope) over a read's `(entry_id, fields)` items, each entry's `entry_bytes` size set
/// as it is built. Only the common entry is built here: an ASCII id of up to 18 digits
/// before its "-", a non-empty dict of bytes to bytes (or Redis' flat list of them), and an
/// event_id of printable ASCII without a space, within the limit. Any other item is handed
/// to `pure` (from_reply itself), so a problem's wording, an odd id and every error stay
/// Python's.
#[pyclass(frozen, module = "cdc_verify._native")]
struct EntryReader {
    cls: Py<PyAny>,  // StreamEntry
    new: Py<PyAny>,  // object.__new__
    pure: Py<PyAny>, // StreamEntry.from_redis
    event_id_key: Py<PyBytes>,
    max_event_id: usize,
    overhead: i64,            // ENTRY_OVERHEAD_BYTES
    names: [Py<PyString>; 7], // the attributes, in ATTRS' order
}

const ATTRS: [&str; 7] = [
    "side",
    "entry_id",
    "fields",
    "arrival_ms",
    "event_id",
    "problem",
    "size",
];
const MAX_MS_DIGITS: usize = 18; // within i64, whatever the digits

#[pymethods]
impl EntryReader {
    #[new]
    fn new(
        py: Python<'_>,
        cls: Py<PyAny>,
        new: Py<PyAny>,
        pure: Py<PyAny>,
        event_id_key: Py<PyBytes>,
        max_event_id: usize,
        overhead: i64,
    ) -> Self {
        EntryReader {
            cls,
            new,
            pure,
            event_id_key,
            max_event_id,
            overhead,
            names: ATTRS.map(|name| PyString::intern(py, name).unbind()),
        }
    }

    /// `[from_redis(side, entry_id, fields) for entry_id, fields in items]`.
    fn read<'py>(
        &self,
        py: Python<'py>,
        side: Bound<'py, PyAny>,
        items: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let read = || -> PyResult<Bound<'py, PyList>> {
            let out = PyList::empty(py);
            for item in items.try_iter()? {
                let item = item?;
                let entry = match self.common(py, &side, &item)? {
                    Some(entry) => entry,
                    None => {
                        let (entry_id, fields): (Bound<'py, PyAny>, Bound<'py, PyAny>) =
                            match item.cast::<PyList>() {
                                Ok(pair) if pair.len() == 2 => {
                                    (pair.get_item(0)?, pair.get_item(1)?)
                                }
                                _ => item.extract()?,
                            };
                        self.pure.bind(py).call1((&side, entry_id, fields))?
                    }
                };
                out.append(entry)?;
            }
            Ok(out)
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
            .unwrap_or_else(|_| Err(PyRuntimeError::new_err("native entry reader panicked")))
    }
}

impl EntryReader {
    /// The entry, if `item` is a common one; None for `pure` to build.
    fn common<'py>(
        &self,
        py: Python<'py>,
        side: &Bound<'py, PyAny>,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let item_ptr = item.as_ptr();
        unsafe {
            // (id, fields) as redis-py parses a reply, or [id, fields] as Redis sends it.
            let (id, fields) = if ffi::PyTuple_CheckExact(item_ptr) != 0
                && ffi::PyTuple_GET_SIZE(item_ptr) == 2
            {
                (
                    ffi::PyTuple_GET_ITEM(item_ptr, 0),
                    ffi::PyTuple_GET_ITEM(item_ptr, 1),
                )
            } else if ffi::PyList_CheckExact(item_ptr) != 0 && ffi::PyList_GET_SIZE(item_ptr) == 2 {
                (
                    ffi::PyList_GET_ITEM(item_ptr, 0),
                    ffi::PyList_GET_ITEM(item_ptr, 1),
                )
            } else {
                return Ok(None);
            };
            if ffi::PyBytes_CheckExact(id) == 0 {
                return Ok(None);
            }
            // A dict, or Redis' flat [name, value, ...] made one (`fields_dict`).
            let fields = if ffi::PyDict_CheckExact(fields) != 0 {
                Bound::from_borrowed_ptr(py, fields)
            } else {
                match flat_dict(py, fields)? {
                    Some(dict) => dict,
                    None => return Ok(None),
                }
            };
            if ffi::PyDict_Size(fields.as_ptr()) == 0 {
                return Ok(None);
            }
            let fields_ptr = fields.as_ptr();
            let Some(arrival_ms) = id_ms(bytes_of(id)) else {
                return Ok(None);
            };
            // entry_bytes: the overhead, the names and the values (bytes only here).
            let mut size = self.overhead;
            let mut pos: ffi::Py_ssize_t = 0;
            let mut key: *mut ffi::PyObject = std::ptr::null_mut();
            let mut value: *mut ffi::PyObject = std::ptr::null_mut();
            while ffi::PyDict_Next(fields_ptr, &mut pos, &mut key, &mut value) != 0 {
                if ffi::PyBytes_CheckExact(key) == 0 || ffi::PyBytes_CheckExact(value) == 0 {
                    return Ok(None);
                }
                size += (ffi::PyBytes_Size(key) + ffi::PyBytes_Size(value)) as i64;
            }
            let raw = ffi::PyDict_GetItemWithError(fields_ptr, self.event_id_key.as_ptr());
            if raw.is_null() {
                if let Some(err) = PyErr::take(py) {
                    return Err(err);
                }
                return Ok(None); // no event_id field: the pure path words the problem
            }
            let text = bytes_of(raw);
            if text.is_empty()
                || text.len() > self.max_event_id
                || !text.iter().all(|b| (0x21..=0x7e).contains(b))
            {
                return Ok(None);
            }
            let event_id = ascii_str(py, text)?;
            let entry_id = ascii_str(py, bytes_of(id))?;
            let entry = Bound::from_owned_ptr_or_err(
                py,
                ffi::PyObject_CallOneArg(self.new.as_ptr(), self.cls.as_ptr()),
            )?;
            let values: [Bound<'py, PyAny>; 7] = [
                side.clone(),
                entry_id,
                fields,
                Bound::from_owned_ptr_or_err(py, ffi::PyLong_FromLongLong(arrival_ms))?,
                event_id,
                py.None().into_bound(py),
                Bound::from_owned_ptr_or_err(py, ffi::PyLong_FromLongLong(size))?,
            ];
            for (name, value) in self.names.iter().zip(values.iter()) {
                if ffi::PyObject_SetAttr(entry.as_ptr(), name.as_ptr(), value.as_ptr()) != 0 {
                    return Err(PyErr::fetch(py));
                }
            }
            Ok(Some(entry))
        }
    }
}

/// `fields_dict` of a non-empty flat list of bytes of even length (a later repeated name
/// wins, as in a dict built in order); None for anything else, which the pure path reads.
unsafe fn flat_dict<'py>(
    py: Python<'py>,
    flat: *mut ffi::PyObject,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if ffi::PyList_CheckExact(flat) == 0 {
        return Ok(None);
    }
    let n = ffi::PyList_GET_SIZE(flat);
    if n == 0 || n % 2 != 0 {
        return Ok(None);
    }
    let dict = Bound::from_owned_ptr_or_err(py, ffi::PyDict_New())?;
    for i in (0..n).step_by(2) {
        let (name, value) = (
            ffi::PyList_GET_ITEM(flat, i),
            ffi::PyList_GET_ITEM(flat, i + 1),
        );
        if ffi::PyBytes_CheckExact(name) == 0 || ffi::PyBytes_CheckExact(value) == 0 {
            return Ok(None);
        }
        if ffi::PyDict_SetItem(dict.as_ptr(), name, value) != 0 {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(Some(dict))
}

/// A bytes object's bytes (borrowed: valid while the object lives).
unsafe fn bytes_of<'a>(bytes: *mut ffi::PyObject) -> &'a [u8] {
    let data = ffi::PyBytes_AsString(bytes) as *const u8;
    std::slice::from_raw_parts(data, ffi::PyBytes_Size(bytes) as usize)
}

/// `entry_id_ms` of an ASCII id whose time is 1 to MAX_MS_DIGITS digits before a "-";
/// None for any other id (the pure path's int() and decode judge it).
fn id_ms(id: &[u8]) -> Option<i64> {
    if !id.is_ascii() {
        return None;
    }
    let dash = id.iter().position(|&b| b == b'-')?;
    if dash == 0 || dash > MAX_MS_DIGITS {
        return None;
    }
    let mut ms: i64 = 0;
    for &b in &id[..dash] {
        if !b.is_ascii_digit() {
            return None;
        }
        ms = ms * 10 + (b - b'0') as i64;
    }
    Some(ms)
}

fn ascii_str<'py>(py: Python<'py>, text: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyUnicode_DecodeASCII(
                text.as_ptr() as *const std::os::raw::c_char,
                text.len() as ffi::Py_ssize_t,
                std::ptr::null(),
            ),
        )
    }
}

/// `filing(decisions_prefix, event_id)` of pipeline/redis/decisions.py: where a decision is
/// kept. The constants are decisions.py's, handed to the constructor. An event_id that is
/// no UTF-8 (a lone surrogate) goes to `pure`, which raises as it does.
#[pyclass(frozen, module = "cdc_verify._native")]
struct Filer {
    pure: Py<PyAny>, // decisions.pure_filing
    shards: u32,
    listpack_max_value: usize,
    own_key: i64,
    digits: [u8; 256], // a ULID byte -> its Crockford value; 0xff for any other byte
    empty: Py<PyString>,
}

#[pymethods]
impl Filer {
    #[new]
    fn new(
        py: Python<'_>,
        pure: Py<PyAny>,
        shards: u32,
        listpack_max_value: usize,
        own_key: i64,
        crockford: &[u8],
    ) -> PyResult<Self> {
        if crockford.len() != 32 || shards == 0 {
            return Err(PyRuntimeError::new_err(
                "Filer: 32 Crockford digits and shards > 0",
            ));
        }
        let mut digits = [0xffu8; 256];
        for (value, &digit) in crockford.iter().enumerate() {
            digits[digit.to_ascii_uppercase() as usize] = value as u8;
            digits[digit.to_ascii_lowercase() as usize] = value as u8;
        }
        Ok(Filer {
            pure,
            shards,
            listpack_max_value,
            own_key,
            digits,
            empty: PyString::intern(py, "").unbind(),
        })
    }

    fn filing<'py>(
        &self,
        py: Python<'py>,
        decisions_prefix: &Bound<'py, PyString>,
        event_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let raw = match event_id.cast::<PyString>() {
            Ok(text) => match text.to_str() {
                Ok(raw) => raw.as_bytes(),
                Err(_) => return self.pure.bind(py).call1((decisions_prefix, event_id)),
            },
            Err(_) => return self.pure.bind(py).call1((decisions_prefix, event_id)),
        };
        let empty = self.empty.bind(py);
        if let Some(ms) = self.ulid_ms(raw) {
            let Ok(prefix) = decisions_prefix.to_str() else {
                return self.pure.bind(py).call1((decisions_prefix, event_id));
            };
            let second = ms / 1000;
            let shard = crc32fast::hash(raw) % self.shards;
            let bucket = format!("{prefix}{second}:{shard}");
            let filed = (bucket, second * 1000 + 1000, -1i64);
            return Ok(filed.into_pyobject(py)?.into_any());
        }
        if raw.len() > self.listpack_max_value {
            return Ok((empty, 0i64, self.own_key).into_pyobject(py)?.into_any());
        }
        Ok((empty, 0i64, crc32fast::hash(raw) as i64)
            .into_pyobject(py)?
            .into_any())
    }
}

impl Filer {
    /// `_ulid_ms`: 26 Crockford digits (either case), the first at most "7".
    fn ulid_ms(&self, raw: &[u8]) -> Option<i64> {
        if raw.len() != 26 || raw[0] > b'7' || raw.iter().any(|&b| self.digits[b as usize] == 0xff)
        {
            return None;
        }
        Some(
            raw[..10]
                .iter()
                .fold(0i64, |ms, &b| ms * 32 + self.digits[b as usize] as i64),
        )
    }
}

/// `may_hold_float32` of core/wire.py past its marker check: whether a msgpack payload
/// holds a float32, a NaN or a float64 a float32 gives back exactly. Walks the bytes
/// without building a value. A payload msgpack-python would refuse (truncated, extra
/// bytes, 0xc1, an ext code below 0 but -1) answers True as the pure function does;
/// None (the pure function decides) for what this leaves to it: a timestamp (ext -1,
/// which msgpack checks) or nesting deeper than MAX_SCAN_DEPTH.
#[pyfunction]
fn may_hold_float32(payload: &[u8]) -> Option<bool> {
    let mut scan = MsgpackCursor {
        data: payload,
        at: 0,
    };
    let mut pending: Vec<u64> = Vec::new(); // items left in each open container
    let mut left: u64 = 1; // items left at the current level
    loop {
        if left == 0 {
            match pending.pop() {
                Some(outer) => {
                    left = outer;
                    continue;
                }
                None => return Some(scan.at != payload.len()), // extra bytes: refused
            }
        }
        left -= 1;
        let children = match scan.item() {
            Item::Children(n) => n,
            Item::Leaf => 0,
            Item::Float => return Some(true),
            Item::Refused => return Some(true),
            Item::Unsure => return None,
        };
        if children > 0 {
            if pending.len() >= MAX_SCAN_DEPTH {
                return None;
            }
            pending.push(left);
            left = children;
        }
    }
}

const MAX_SCAN_DEPTH: usize = 500; // msgpack-python stops at 1024 levels

enum Item {
    Children(u64), // an array's items or a map's keys and values follow
    Leaf,
    Float, // a float the pure function answers True for
    Refused,
    Unsure,
}

/// A position in a msgpack payload: what the float32 scan and the wire walk read through.
struct MsgpackCursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl MsgpackCursor<'_> {
    #[inline(always)]
    fn take(&mut self, n: u64) -> Option<&[u8]> {
        let end = (self.at as u64).checked_add(n)?;
        if end > self.data.len() as u64 {
            return None;
        }
        let bytes = &self.data[self.at..end as usize];
        self.at = end as usize;
        Some(bytes)
    }

    #[inline(always)]
    fn uint(&mut self, n: u64) -> Option<u64> {
        Some(self.take(n)?.iter().fold(0u64, |v, &b| v << 8 | b as u64))
    }

    /// The next value's header and what the scan makes of it (its bytes skipped).
    fn item(&mut self) -> Item {
        let Some((kind, length)) = wire_header(self) else {
            return Item::Refused; // cut short, or 0xc1
        };
        match kind {
            WireKind::Map => Item::Children(2 * length),
            WireKind::Array => Item::Children(length),
            WireKind::Float32 => match self.take(4) {
                Some(_) => Item::Float, // a float32 gives itself back
                None => Item::Refused,
            },
            WireKind::Float64 => match self.uint(8) {
                Some(bits) => {
                    let x = f64::from_bits(bits);
                    let y = x as f32;
                    if x.is_nan() || (!(y.is_infinite() && x.is_finite()) && y as f64 == x) {
                        Item::Float
                    } else {
                        Item::Leaf // past float32's range (struct's OverflowError) or inexact
                    }
                }
                None => Item::Refused,
            },
            WireKind::Ext(-1) => Item::Unsure, // a timestamp: msgpack checks its data
            WireKind::Ext(code) if code < 0 => Item::Refused, // ExtType takes codes 0-127
            _ => match self.take(length) {
                Some(_) => Item::Leaf,
                None => Item::Refused,
            },
        }
    }
}

/// `msgpack_wire_types` of core/wire.py: JSON pointer -> wire type of every value of a
/// msgpack payload, in the same order (a repeated map key keeps its first place and its
/// last type). None for a payload the pure function refuses (it words the WireError):
/// cut short, bytes after the value, 0xc1, a map key that is no str.
#[pyfunction]
fn msgpack_wire_types<'py>(
    py: Python<'py>,
    payload: &[u8],
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let out = PyDict::new(py);
    let names = WireNames::new(py);
    let mut buf = MsgpackCursor {
        data: payload,
        at: 0,
    };
    // Each open container: its path, items left, whether a map, the next array index.
    let mut stack: Vec<(String, u64, bool, u64)> = Vec::new();
    let mut path = String::new();
    loop {
        let Some((kind, length)) = wire_header(&mut buf) else {
            return Ok(None);
        };
        let name = match kind {
            WireKind::Ext(code) => PyString::new(py, &format!("ext{code}")),
            _ => names.of(kind).clone(),
        };
        out.set_item(PyString::new(py, &path), name)?;
        match kind {
            WireKind::Map | WireKind::Array => {
                if length > 0 {
                    stack.push((std::mem::take(&mut path), length, kind == WireKind::Map, 0));
                }
            }
            _ => {
                if buf.take(length).is_none() {
                    return Ok(None);
                }
            }
        }
        while matches!(stack.last(), Some((_, 0, _, _))) {
            stack.pop();
        }
        let Some(top) = stack.last_mut() else {
            return Ok(if buf.at == payload.len() {
                Some(out)
            } else {
                None
            });
        };
        top.1 -= 1;
        path.clear();
        path.push_str(&top.0);
        path.push('/');
        if top.2 {
            let Some((WireKind::Str, key_len)) = wire_header(&mut buf) else {
                return Ok(None);
            };
            let Some(key) = buf.take(key_len) else {
                return Ok(None);
            };
            // Python's own decoding, "replace" included: the same text for any bytes.
            let key = unsafe {
                Bound::from_owned_ptr_or_err(
                    py,
                    ffi::PyUnicode_DecodeUTF8(
                        key.as_ptr() as *const std::os::raw::c_char,
                        key.len() as ffi::Py_ssize_t,
                        c"replace".as_ptr(),
                    ),
                )?
            };
            let key = key.cast::<PyString>()?.to_str()?.to_owned();
            if key.contains(['~', '/']) {
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
            } else {
                path.push_str(&key);
            }
        } else {
            path.push_str(&top.3.to_string());
            top.3 += 1;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum WireKind {
    Int,
    Map,
    Array,
    Str,
    Nil,
    Bool,
    Float32,
    Float64,
    Bin,
    Ext(i8),
}

/// The type names, as Python strs made once per call.
struct WireNames<'py> {
    names: [Bound<'py, PyString>; 9],
}

impl<'py> WireNames<'py> {
    fn new(py: Python<'py>) -> Self {
        let names = [
            "int", "map", "array", "str", "nil", "bool", "float32", "float64", "bin",
        ];
        WireNames {
            names: names.map(|name| PyString::intern(py, name)),
        }
    }

    fn of(&self, kind: WireKind) -> &Bound<'py, PyString> {
        let at = match kind {
            WireKind::Int => 0,
            WireKind::Map => 1,
            WireKind::Array => 2,
            WireKind::Str => 3,
            WireKind::Nil => 4,
            WireKind::Bool => 5,
            WireKind::Float32 => 6,
            WireKind::Float64 => 7,
            WireKind::Bin | WireKind::Ext(_) => 8,
        };
        &self.names[at]
    }
}

/// `_header` of core/wire.py: (wire type, payload bytes or item count); None where it
/// raises. Inlined: the float32 scan took 1.7 times as long through a call (measured).
#[inline(always)]
fn wire_header(buf: &mut MsgpackCursor<'_>) -> Option<(WireKind, u64)> {
    let &[b] = buf.take(1)? else { return None };
    let sized = |buf: &mut MsgpackCursor<'_>, width: u64| buf.uint(width);
    Some(match b {
        0x00..=0x7f | 0xe0..=0xff => (WireKind::Int, 0),
        0x80..=0x8f => (WireKind::Map, (b & 0x0f) as u64),
        0x90..=0x9f => (WireKind::Array, (b & 0x0f) as u64),
        0xa0..=0xbf => (WireKind::Str, (b & 0x1f) as u64),
        0xc0 => (WireKind::Nil, 0),
        0xc2 | 0xc3 => (WireKind::Bool, 0),
        0xca => (WireKind::Float32, 4),
        0xcb => (WireKind::Float64, 8),
        0xcc..=0xd3 => (WireKind::Int, 1 << ((b - 0xcc) & 3)),
        0xc4 => (WireKind::Bin, sized(buf, 1)?),
        0xc5 => (WireKind::Bin, sized(buf, 2)?),
        0xc6 => (WireKind::Bin, sized(buf, 4)?),
        0xd9 => (WireKind::Str, sized(buf, 1)?),
        0xda => (WireKind::Str, sized(buf, 2)?),
        0xdb => (WireKind::Str, sized(buf, 4)?),
        0xdc => (WireKind::Array, sized(buf, 2)?),
        0xdd => (WireKind::Array, sized(buf, 4)?),
        0xde => (WireKind::Map, sized(buf, 2)?),
        0xdf => (WireKind::Map, sized(buf, 4)?),
        0xc7..=0xc9 => {
            let length = sized(buf, 1 << (b - 0xc7))?;
            let &[code] = buf.take(1)? else { return None };
            (WireKind::Ext(code as i8), length)
        }
        0xd4..=0xd8 => {
            let &[code] = buf.take(1)? else { return None };
            (WireKind::Ext(code as i8), 1 << (b - 0xd4))
        }
        0xc1 => return None,
    })
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<ShapeWalker>()?;
    module.add_class::<EntryReader>()?;
    module.add_class::<Filer>()?;
    module.add_function(wrap_pyfunction!(same_types, module)?)?;
    module.add_function(wrap_pyfunction!(may_hold_float32, module)?)?;
    module.add_function(wrap_pyfunction!(msgpack_wire_types, module)?)?;
    Ok(())
}
