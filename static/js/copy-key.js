// The Copy button beside a new API key: the clipboard API where the page is a secure
// context, else selecting the text and the older copy command.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById("copy-status");
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch {
    field.select();
    copied = document.execCommand("copy");
  }
  if (status) status.textContent = copied ? "Copied." : "Select the key and copy it yourself.";
});
