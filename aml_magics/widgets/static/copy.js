// A "copy" button for secrets: the kernel sends the value in a one-off message on click; it never
// becomes widget state, so a saved notebook cannot contain it.
export default {
  render({ model, el }) {
    const b = document.createElement("button");
    b.className = "jupyter-button aml-copy";
    b.textContent = model.get("label");
    b.onclick = () => model.send({ type: "copy" });
    const onMsg = async (msg) => {
      if (!msg || msg.type !== "secret") return;
      try { await navigator.clipboard.writeText(msg.value); b.textContent = "copied"; }
      catch (e) { b.textContent = "copy failed (clipboard blocked)"; }
      setTimeout(() => { b.textContent = model.get("label"); }, 1500);
    };
    model.on("msg:custom", onMsg);
    el.append(b);
    return () => model.off("msg:custom", onMsg);
  },
};
