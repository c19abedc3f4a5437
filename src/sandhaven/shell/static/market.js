// App market: choosing a category searches at once. Without JavaScript the
// Search button does the same.
document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("category");
  if (select && select.form) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
});
