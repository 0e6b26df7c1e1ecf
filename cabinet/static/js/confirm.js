// Ask before sending a form marked data-confirm="question" (no inline handlers:
// the Content-Security-Policy allows scripts from /static only).
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);
