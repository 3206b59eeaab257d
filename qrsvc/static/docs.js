// The API reference at /docs: the vendored Swagger UI on this server's own description.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("reference");
  window.SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: false,
    validatorUrl: null,
  });
});
