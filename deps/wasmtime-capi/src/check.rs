//! Every import of a component that a linker cannot satisfy, found without
//! instantiating anything.
//!
//! Wasmtime's type check (`Linker::substituted_component_type`, what
//! `instantiate` runs first) stops at the first import it cannot satisfy,
//! and the C API offers no way to ask a linker whether it defines a name.
//! `wasmlet_component_linker_unsatisfied` therefore checks a clone of the
//! linker repeatedly: each failure names one import (the error's outermost
//! context says "component imports instance `NAME`, ..."), which is
//! reported and then stubbed in the clone with items that trap if called,
//! so the next check goes past it. The linker itself is not changed.
use crate::ffi;
use crate::layout;
use std::ffi::{c_char, c_void};
use wasmtime_c_api::wasmtime::component::types::{ComponentInstance, ComponentItem};
use wasmtime_c_api::wasmtime::component::{LinkerInstance, ResourceType};
use wasmtime_c_api::wasmtime::{Engine, Error, Result, bail};
use wasmtime_c_api::{WasmtimeStoreData, wasmtime_component_linker_t, wasmtime_component_t};

/// `wasmlet_unsatisfied_fn` in wasmlet_capi.h.
type UnsatisfiedFn = extern "C" fn(*mut c_void, *const c_char, usize, *const c_char, usize);

/// The resource type of stubbed resources.
struct Stub;

fn stub_func(inst: &mut LinkerInstance<'_, WasmtimeStoreData>, name: &str) -> Result<()> {
    let owned = name.to_string();
    inst.func_new(name, move |_, _, _, _| bail!("`{owned}` is not provided by this host"))
}

fn stub_instance(
    inst: &mut LinkerInstance<'_, WasmtimeStoreData>,
    ty: &ComponentInstance,
    engine: &Engine,
) -> Result<()> {
    for (name, ext) in ty.exports(engine) {
        match ext.ty {
            ComponentItem::ComponentFunc(_) => stub_func(inst, name)?,
            ComponentItem::Resource(_) => {
                inst.resource(name, ResourceType::host::<Stub>(), |_, _| Ok(()))?
            }
            ComponentItem::ComponentInstance(sub) => {
                let mut sub_inst = inst.instance(name)?;
                stub_instance(&mut sub_inst, &sub, engine)?
            }
            _ => {}
        }
    }
    Ok(())
}

/// The import an error of the type check is about: the first name between
/// backquotes in its outermost context.
fn import_named(err: &Error) -> Option<String> {
    let top = err.to_string();
    let start = top.find('`')? + 1;
    let len = top[start..].find('`')?;
    Some(top[start..start + len].to_string())
}

fn unsatisfied(
    linker: &wasmtime_component_linker_t,
    component: &wasmtime_component_t,
    report: &mut dyn FnMut(&str, &str),
) -> Result<usize> {
    let linker = layout::component_linker_ref(linker);
    let component = layout::component(component);
    let engine = linker.engine().clone();
    let ty = component.component_type();
    let imports: Vec<(String, ComponentItem)> =
        ty.imports(&engine).map(|(name, ext)| (name.to_string(), ext.ty)).collect();
    let mut probe = linker.clone();
    probe.allow_shadowing(true);
    let mut found = 0;
    // Each round reports and stubs one import, so imports.len() + 1 rounds
    // end it; more means the stub did not take and the loop would not end.
    for _ in 0..=imports.len() {
        let err = match probe.substituted_component_type(component) {
            Ok(_) => return Ok(found),
            Err(err) => err,
        };
        let why = err.root_cause().to_string();
        let named = import_named(&err);
        let Some((name, item)) = named
            .as_ref()
            .and_then(|n| imports.iter().find(|(name, _)| name == n))
        else {
            // Not about one import: report the whole error once.
            report("", &format!("{err:#}"));
            return Ok(found + 1);
        };
        report(name, &why);
        found += 1;
        let mut root = probe.root();
        match item {
            ComponentItem::ComponentInstance(inst_ty) => {
                let mut inst = root.instance(name)?;
                stub_instance(&mut inst, inst_ty, &engine)?;
            }
            ComponentItem::ComponentFunc(_) => stub_func(&mut root, name)?,
            ComponentItem::Resource(_) => {
                root.resource(name, ResourceType::host::<Stub>(), |_, _| Ok(()))?
            }
            _ => return Ok(found),
        }
    }
    Ok(found)
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_component_linker_unsatisfied(
    linker: Option<&wasmtime_component_linker_t>,
    component: Option<&wasmtime_component_t>,
    report: Option<UnsatisfiedFn>,
    data: *mut c_void,
) -> isize {
    ffi::guard_or(-1, || {
        let (Some(linker), Some(component)) = (linker, component) else {
            return -1;
        };
        let mut call = |name: &str, why: &str| {
            if let Some(report) = report {
                report(
                    data,
                    name.as_ptr().cast(),
                    name.len(),
                    why.as_ptr().cast(),
                    why.len(),
                );
            }
        };
        match unsatisfied(linker, component, &mut call) {
            Ok(n) => n as isize,
            Err(_) => -1,
        }
    })
}
