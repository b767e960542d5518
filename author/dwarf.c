/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dwarf.c: what hp build reads from DWARF, through libdw and libdwfl: each
 * function's declaration (file, line), its prototype as type names, the
 * functions inlined into it; each named struct's layout; and whether a unit
 * came out of link-time optimisation. A relocatable object is opened
 * through libdwfl's offline reporting, which applies its relocations to the
 * debug sections (string offsets, abstract origins) as a linker would.
 */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "author-int.h"

/* Nesting followed when naming a type or walking a function's scopes. */
#define DW_DEPTH_MAX 12
#define DW_FUNCS_MAX (1u << 20)

static int dw_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
			     Dwarf_Addr base, const char *file_name, const char *debuglink_file,
			     GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	/* The file itself holds its DWARF: look nowhere else. */
	(void)mod; (void)userdata; (void)modname; (void)base; (void)file_name;
	(void)debuglink_file; (void)debuglink_crc; (void)debuginfo_file_name;
	return -1;
}

static const Dwfl_Callbacks dw_callbacks = {
	.find_debuginfo = dw_find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

/* "const char *", "struct foo", "int[]": enough to tell two prototypes apart. */
static void type_name(Dwarf_Die *die, struct hp_buf *b, int depth)
{
	Dwarf_Attribute at;
	Dwarf_Die t;
	const char *name;

	if (depth > DW_DEPTH_MAX || !dwarf_attr_integrate(die, DW_AT_type, &at) ||
	    !dwarf_formref_die(&at, &t)) {
		hp_buf_adds(b, "void");
		return;
	}
	name = dwarf_diename(&t);
	switch (dwarf_tag(&t)) {
	case DW_TAG_pointer_type:
		type_name(&t, b, depth + 1);
		hp_buf_adds(b, "*");
		break;
	case DW_TAG_const_type:
		hp_buf_adds(b, "const ");
		type_name(&t, b, depth + 1);
		break;
	case DW_TAG_volatile_type:
		hp_buf_adds(b, "volatile ");
		type_name(&t, b, depth + 1);
		break;
	case DW_TAG_array_type:
		type_name(&t, b, depth + 1);
		hp_buf_adds(b, "[]");
		break;
	case DW_TAG_structure_type:
	case DW_TAG_class_type:
		hp_buf_addf(b, "struct %s", name ? name : "?");
		break;
	case DW_TAG_union_type:
		hp_buf_addf(b, "union %s", name ? name : "?");
		break;
	case DW_TAG_enumeration_type:
		hp_buf_addf(b, "enum %s", name ? name : "?");
		break;
	case DW_TAG_subroutine_type:
		hp_buf_adds(b, "fn()");
		break;
	default:
		hp_buf_adds(b, name ? name : "?");
	}
}

static char *proto_of(Dwarf_Die *fn)
{
	struct hp_buf b = HP_BUF_INIT;
	Dwarf_Die child;
	bool first = true;
	char *s;

	type_name(fn, &b, 0);
	hp_buf_adds(&b, "(");
	if (dwarf_child(fn, &child) == 0)
		do {
			if (dwarf_tag(&child) == DW_TAG_formal_parameter) {
				if (!first)
					hp_buf_adds(&b, ",");
				type_name(&child, &b, 0);
				first = false;
			} else if (dwarf_tag(&child) == DW_TAG_unspecified_parameters) {
				hp_buf_adds(&b, first ? "..." : ",...");
				first = false;
			}
		} while (dwarf_siblingof(&child, &child) == 0);
	hp_buf_adds(&b, ")");
	s = b.data ? strdup(b.data) : NULL;
	hp_buf_release(&b);
	return s;
}

static char *layout_of(Dwarf_Die *st)
{
	struct hp_buf b = HP_BUF_INIT;
	Dwarf_Word size = 0;
	Dwarf_Attribute at;
	Dwarf_Die child;
	char *s;

	if (dwarf_attr(st, DW_AT_byte_size, &at))
		dwarf_formudata(&at, &size);
	hp_buf_addf(&b, "%llu bytes:", (unsigned long long)size);
	if (dwarf_child(st, &child) == 0)
		do {
			Dwarf_Word off = 0;
			const char *m;

			if (dwarf_tag(&child) != DW_TAG_member)
				continue;
			m = dwarf_diename(&child);
			if (dwarf_attr(&child, DW_AT_data_member_location, &at))
				dwarf_formudata(&at, &off);
			hp_buf_addf(&b, " %s@%llu:", m ? m : "?", (unsigned long long)off);
			type_name(&child, &b, 0);
		} while (dwarf_siblingof(&child, &child) == 0);
	s = b.data ? strdup(b.data) : NULL;
	hp_buf_release(&b);
	return s;
}

/*
 * The name a function has in the symbol table: its linkage name when it has
 * one (C++: mangled, through the declaration in its class or the abstract
 * origin of an inlined copy), else its name (C).
 */
static const char *link_name(Dwarf_Die *die)
{
	Dwarf_Attribute at;
	const char *s = NULL;

	if (dwarf_attr_integrate(die, DW_AT_linkage_name, &at) ||
	    dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &at))
		s = dwarf_formstring(&at);
	return s ? s : dwarf_diename(die);
}

/* Names of the functions inlined anywhere under die (nested too). */
static void collect_inlined(Dwarf_Die *die, struct strv *sv, int depth)
{
	Dwarf_Die child;

	if (depth > DW_DEPTH_MAX || dwarf_child(die, &child) != 0)
		return;
	do {
		int tag = dwarf_tag(&child);

		if (tag == DW_TAG_inlined_subroutine) {
			const char *n = link_name(&child);

			if (n && !strv_has(sv, n))
				strv_add(sv, n);
			collect_inlined(&child, sv, depth + 1);
		} else if (tag == DW_TAG_lexical_block) {
			collect_inlined(&child, sv, depth + 1);
		}
	} while (dwarf_siblingof(&child, &child) == 0);
}

static int add_func(struct dw_info *di, Dwarf_Die *die, size_t *cap)
{
	struct dw_func *f;
	const char *name = link_name(die), *file;
	Dwarf_Attribute at;
	Dwarf_Addr lo;
	bool flag = false;
	int line = 0;

	if (!name || (dwarf_attr(die, DW_AT_declaration, &at) && dwarf_formflag(&at, &flag) == 0 &&
		      flag))
		return 0;
	if (di->n_funcs == *cap) {
		size_t ncap = *cap ? 2 * *cap : 256;
		struct dw_func *v;

		if (ncap > DW_FUNCS_MAX)
			return -E2BIG;
		v = realloc(di->funcs, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		di->funcs = v;
		*cap = ncap;
	}
	f = &di->funcs[di->n_funcs];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	file = dwarf_decl_file(die);
	f->file = file ? strdup(file) : NULL;
	dwarf_decl_line(die, &line);
	f->line = line;
	f->proto = proto_of(die);
	f->external = dwarf_hasattr_integrate(die, DW_AT_external);
	f->concrete = dwarf_lowpc(die, &lo) == 0 || dwarf_hasattr(die, DW_AT_ranges);
	if (!f->name) {
		free(f->file);
		free(f->proto);
		return -ENOMEM;
	}
	if (f->concrete)
		collect_inlined(die, &f->inlined, 0);
	di->n_funcs++;
	return 0;
}

static void add_struct(struct dw_info *di, Dwarf_Die *die)
{
	const char *name = dwarf_diename(die);
	struct dw_struct *v;

	if (!name || dwarf_hasattr(die, DW_AT_declaration))
		return;
	for (size_t i = 0; i < di->n_structs; i++)
		if (!strcmp(di->structs[i].name, name))
			return; /* the first definition of a name speaks for the object */
	v = realloc(di->structs, (di->n_structs + 1) * sizeof(*v));
	if (!v)
		return;
	di->structs = v;
	v[di->n_structs].name = strdup(name);
	v[di->n_structs].layout = layout_of(die);
	if (!v[di->n_structs].name || !v[di->n_structs].layout) {
		free(v[di->n_structs].name);
		free(v[di->n_structs].layout);
		return;
	}
	di->n_structs++;
}

static int walk(struct dw_info *di, Dwarf_Die *die, size_t *cap, int depth)
{
	Dwarf_Die child;
	int r = 0;

	if (depth > DW_DEPTH_MAX || dwarf_child(die, &child) != 0)
		return 0;
	do {
		switch (dwarf_tag(&child)) {
		case DW_TAG_subprogram:
			r = add_func(di, &child, cap);
			break;
		case DW_TAG_structure_type:
		case DW_TAG_class_type:
		case DW_TAG_union_type:
			add_struct(di, &child);
			break;
		case DW_TAG_namespace:
		case DW_TAG_lexical_block:
			r = walk(di, &child, cap, depth + 1);
			break;
		default:
			break;
		}
	} while (r >= 0 && dwarf_siblingof(&child, &child) == 0);
	return r;
}

static int walk_dwarf(struct dw_info *di, Dwarf *dw)
{
	Dwarf_Off off = 0, next;
	size_t hsize, cap = 0;
	int r = 0;

	di->has_dwarf = true;
	while (r >= 0 && dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu;
		Dwarf_Attribute at;
		const char *prod, *name;

		if (dwarf_offdie(dw, off + hsize, &cu)) {
			prod = dwarf_attr(&cu, DW_AT_producer, &at) ? dwarf_formstring(&at) : NULL;
			name = dwarf_diename(&cu);
			if (prod)
				strv_add(&di->producers, prod);
			if ((prod && (!strncmp(prod, "GNU GIMPLE", 10) || strstr(prod, "-flto"))) ||
			    (name && !strcmp(name, "<artificial>")))
				di->lto = true;
			r = walk(di, &cu, &cap, 0);
		}
		off = next;
	}
	return r;
}

int dw_info_load(const char *path, struct dw_info *ret)
{
	struct dw_info di;
	Dwfl *dwfl;
	Dwfl_Module *mod;
	Dwarf_Addr bias;
	Dwarf *dw;
	int r = 0;

	memset(&di, 0, sizeof(di));
	dwfl = dwfl_begin(&dw_callbacks);
	if (!dwfl)
		return hp_err(-ENOMEM, "libdwfl: %s", dwfl_errmsg(-1));
	mod = dwfl_report_offline(dwfl, "", path, -1);
	dwfl_report_end(dwfl, NULL, NULL);
	dw = mod ? dwfl_module_getdwarf(mod, &bias) : NULL;
	if (dw)
		r = walk_dwarf(&di, dw);
	dwfl_end(dwfl);
	if (r < 0) {
		dw_info_release(&di);
		return hp_err(r, "%s: reading its DWARF: %s", path, strerror(-r));
	}
	*ret = di;
	return 0;
}

void dw_info_release(struct dw_info *di)
{
	for (size_t i = 0; i < di->n_funcs; i++) {
		free(di->funcs[i].name);
		free(di->funcs[i].file);
		free(di->funcs[i].proto);
		strv_release(&di->funcs[i].inlined);
	}
	free(di->funcs);
	for (size_t i = 0; i < di->n_structs; i++) {
		free(di->structs[i].name);
		free(di->structs[i].layout);
	}
	free(di->structs);
	strv_release(&di->producers);
	memset(di, 0, sizeof(*di));
}

const struct dw_func *dw_func_find(const struct dw_info *di, const char *name, bool concrete)
{
	const struct dw_func *any = NULL;

	for (size_t i = 0; i < di->n_funcs; i++) {
		if (strcmp(di->funcs[i].name, name))
			continue;
		if (!concrete || di->funcs[i].concrete)
			return &di->funcs[i];
		any = &di->funcs[i];
	}
	return concrete ? NULL : any;
}
