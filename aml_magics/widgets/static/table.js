// aml-magics data table: sortable columns, a filter box, row selection and paging. Row clicks and
// page requests go to the kernel as messages; the kernel answers by setting `rows`.

function cmp(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined || a === "") return 1;
  if (b === null || b === undefined || b === "") return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

// bidirectional overrides and isolates in a name are shown as escapes, not acted on (a name read backwards,
// "Trojan Source"): the same rule as the notebook's HTML (core.render.esc)
const BIDI = /[\u202a-\u202e\u2066-\u2069]/g;
const shownText = (s) => String(s).replace(BIDI, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));

function cell(row, col) {
  const v = row[col.key];
  if (v === null || v === undefined) return "";
  if (typeof v === "number" && !Number.isInteger(v)) return +v.toPrecision(5) + "";
  return shownText(v);
}

// the first `count` data columns (after `skip` checkbox columns) stick to the left edge of the scroll container
function pin(table, count, skip) {
  if (!count) return;
  const head = table.querySelector("thead tr");
  if (!head) return;
  const cells = Array.from(head.children).slice(0, skip + count);
  let left = 0;
  cells.forEach((th, i) => {
    for (const tr of table.querySelectorAll("tr")) {
      const c = tr.children[i];
      if (!c) continue;
      c.classList.add("aml-pin");
      c.style.left = left + "px";
      if (i === cells.length - 1) c.classList.add("aml-pin-last");
    }
    left += th.getBoundingClientRect().width;
  });
}

export default {
  render({ model, el }) {
    const root = document.createElement("div");
    root.className = "aml-table";
    const bar = document.createElement("div");
    bar.className = "aml-table-bar";
    const filter = document.createElement("input");
    filter.type = "search"; filter.placeholder = "filter…"; filter.className = "aml-table-filter";
    const info = document.createElement("span");
    info.className = "aml-table-info";
    const prev = document.createElement("button"); prev.textContent = "‹"; prev.title = "previous page";
    const next = document.createElement("button"); next.textContent = "›"; next.title = "next page";
    bar.append(filter, info, prev, next);
    const table = document.createElement("table");
    const scroll = document.createElement("div");  // never wider than the cell: wide tables scroll sideways
    scroll.className = "aml-table-scroll";
    scroll.append(table);
    const empty = document.createElement("div");  // an honest sentence instead of an empty table
    empty.className = "aml-table-empty";
    root.append(bar, scroll, empty);
    el.append(root);

    const draw = () => {
      const cols = model.get("columns") || [];
      const sort = model.get("sort") || {};
      const selectable = model.get("selectable");
      const selected = new Set(model.get("selected") || []);
      const highlight = model.get("highlight");
      const q = filter.value.trim().toLowerCase();
      let rows = (model.get("rows") || []).slice();
      if (q) rows = rows.filter((r) => cols.some((c) => cell(r, c).toLowerCase().includes(q)));
      if (sort.key) {
        rows.sort((a, b) => cmp(a[sort.key], b[sort.key]));
        if (sort.desc) rows.reverse();
      }
      const head = document.createElement("thead");
      const hr = document.createElement("tr");
      if (selectable) hr.append(document.createElement("th"));
      for (const c of cols) {
        const th = document.createElement("th");
        th.textContent = shownText(c.label) + (sort.key === c.key ? (sort.desc ? " ▼" : " ▲") : "");
        th.title = "sort by " + c.label;
        th.onclick = () => model.set("sort", { key: c.key, desc: sort.key === c.key ? !sort.desc : !!c.numeric }) || model.save_changes();
        hr.append(th);
      }
      head.append(hr);
      const body = document.createElement("tbody");
      for (const r of rows) {
        const tr = document.createElement("tr");
        tr.dataset.id = r._id;
        if (r._id === highlight) tr.className = "aml-best";
        if (selectable) {
          const td = document.createElement("td");
          const box = document.createElement("input");
          box.type = "checkbox"; box.checked = selected.has(r._id);
          box.onclick = (e) => {
            e.stopPropagation();
            const now = new Set(model.get("selected") || []);
            box.checked ? now.add(r._id) : now.delete(r._id);
            model.set("selected", [...now]); model.save_changes();
          };
          td.append(box); tr.append(td);
        }
        for (const c of cols) {
          const td = document.createElement("td");
          if (c.key === "status") {
            // the state comes from the workspace: a text node, and a class made of letters only
            const badge = document.createElement("span");
            badge.className = "aml-status aml-status-" + cell(r, c).replace(/[^A-Za-z]/g, "");
            badge.textContent = cell(r, c);
            td.append(badge);
          } else td.textContent = cell(r, c);
          if (c.numeric) td.className = "aml-num";
          tr.append(td);
        }
        tr.onclick = () => model.send({ type: "open", id: r._id });
        body.append(tr);
      }
      table.replaceChildren(head, body);
      const none = !(model.get("rows") || []).length && model.get("empty");
      table.style.display = none ? "none" : "";
      empty.textContent = none ? model.get("empty") : "";
      empty.style.display = none ? "" : "none";
      pin(table, model.get("pinned") || 0, selectable ? 1 : 0);
      const total = model.get("total"), offset = model.get("offset"), n = (model.get("rows") || []).length;
      info.textContent = total > n ? `${offset + 1}–${offset + n} of ${total}` : `${n} row${n === 1 ? "" : "s"}`;
      prev.disabled = offset <= 0; next.disabled = offset + n >= total;
      root.dataset.rows = String(rows.length);
    };
    prev.onclick = () => model.send({ type: "page", offset: Math.max(0, model.get("offset") - model.get("limit")) });
    next.onclick = () => model.send({ type: "page", offset: model.get("offset") + model.get("limit") });
    filter.oninput = draw;
    const names = ["rows", "columns", "sort", "selected", "total", "offset", "highlight", "pinned", "empty"];
    for (const n of names) model.on("change:" + n, draw);
    draw();
    return () => { for (const n of names) model.off("change:" + n, draw); };
  },
};
