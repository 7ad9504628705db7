"""The pages of the course website, written as MyST Markdown from the project's own sources.

Nothing here is typed twice: the modules, tiers, prerequisites and milestones come from the
manifest; each module page is the module's learner edition (`tito.release.learner_source`, so no
answer reaches the site); the quick start is the README's; the command reference is tito's own
parser; the checkpoints are the capability tests' own names. The prose that only the website
has (the landing page, the instructor guide, the learning paths, the measured milestone
figures) lives in `site/`, with `{{ name }}` slots that this file fills.
"""

from __future__ import annotations

import argparse
import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from tinytorch_base.manifest import TIERS, CourseModule, Manifest, Milestone
from tito.errors import TitoError
from tito.journey import compact_numbers as compact
from tito.release import learner_source
from tito.site.graph import dependency_svg, direct_prerequisites, prerequisite_closure

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SITE_SOURCES = Path("site")  # the hand-written parts of the website, in the project
CHECKPOINT_TESTS = Path("tests") / "checkpoints"
HELP_WIDTH = 92  # the command reference's help texts are wrapped as on a terminal this wide
SLOT = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


class SiteError(TitoError):
    """The website cannot be built or checked; the message says what to fix."""


# ---- the course as the website sees it ------------------------------------------------------------
@dataclass(frozen=True)
class MilestoneResult:
    milestone: str
    setting: str
    measured: str
    command: str
    source: str


@dataclass(frozen=True)
class Course:
    root: Path
    manifest: Manifest
    paged: tuple[CourseModule, ...]  # available modules whose source exists: each gets a page
    settings: dict
    results: tuple[MilestoneResult, ...]

    def has_page(self, module: CourseModule) -> bool:
        return module in self.paged

    def state(self, module: CourseModule) -> str:
        """Why a module has no page: it is planned, or its source is not in this copy yet."""
        return "planned" if not module.available else "no source yet"


def load_course(root: Path, manifest: Manifest) -> Course:
    folder = root / SITE_SOURCES
    if not folder.is_dir():
        raise SiteError(f"no {SITE_SOURCES.as_posix()}/ folder in {root}: the website's own texts live there; "
                        "build the site from the course's reference repository")
    settings = read_toml(folder / "course.toml")
    paged = tuple(m for m in manifest.available_modules if (root / m.source).is_file())
    course = Course(root, manifest, paged, settings,
                    read_results(folder / "milestone_results.toml", manifest))
    for path in course.settings.get("path", []):
        for key in ("name", "summary", "milestones", "then"):
            if key not in path:
                raise SiteError(f"{SITE_SOURCES.as_posix()}/course.toml: a [[path]] has no '{key}'")
    return course


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiteError(f"{path} is missing; the website needs it") from None
    except tomllib.TOMLDecodeError as error:
        raise SiteError(f"{path} is not valid TOML: {error}") from None


def read_results(path: Path, manifest: Manifest) -> tuple[MilestoneResult, ...]:
    """The committed milestone figures; each names its milestone, setting, command and source."""
    results = []
    names = {m.name for m in manifest.milestones}
    fields = ("milestone", "setting", "measured", "command", "source")
    for index, entry in enumerate(read_toml(path).get("result", [])):
        missing = [f for f in fields if not str(entry.get(f, "")).strip()]
        if missing:
            raise SiteError(f"{path.name}: result {index + 1} has no {', '.join(missing)}")
        if entry["milestone"] not in names:
            raise SiteError(f"{path.name}: result {index + 1} is for milestone {entry['milestone']!r}, which the "
                            f"manifest does not list (it lists: {', '.join(sorted(names))})")
        results.append(MilestoneResult(*(str(entry[f]) for f in fields)))
    return tuple(results)


def template(course: Course, name: str) -> str:
    path = course.root / SITE_SOURCES / name
    if not path.is_file():
        raise SiteError(f"{path} is missing; the website needs it")
    return path.read_text(encoding="utf-8")


def fill(text: str, values: dict[str, str], where: str) -> str:
    """Replace each `{{ name }}` slot; a slot without a value, or a value without a slot, is an error."""
    used = set(SLOT.findall(text))
    unknown, unused = used - set(values), set(values) - used
    if unknown:
        raise SiteError(f"{where}: unknown slot(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(values))}")
    if unused:
        raise SiteError(f"{where}: the page must show {', '.join('{{ ' + n + ' }}' for n in sorted(unused))}")
    return SLOT.sub(lambda match: values[match.group(1)], text)


# ---- links ------------------------------------------------------------------------------------------
def module_docname(module: CourseModule) -> str:
    return f"modules/{module.name}"


def module_label(module: CourseModule) -> str:
    return f"{module.number} {module.title}"


def module_link(course: Course, module: CourseModule, label: str | None = None) -> str:
    """A checked cross-reference to the module's page, or its name and why it has none."""
    label = label or module_label(module)
    if course.has_page(module):
        return f"{{doc}}`{label} </{module_docname(module)}>`"
    return f"{label} ({course.state(module)})"


def milestone_label(milestone: Milestone) -> str:
    return f"milestone-{milestone.name}"


def command_label(words: tuple[str, ...]) -> str:
    return "command-" + "-".join(words) if words else "command-tito"


def table_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---- module pages ------------------------------------------------------------------------------------
TITLE_LINE = re.compile(r"^# # (?P<title>\S.*)$")


def module_title(text: str, module: CourseModule) -> tuple[int, str]:
    """(line index, title) of the H1 heading in the module's first markdown cell."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("# %% [markdown]")), None)
    if first is not None:
        for index in range(first + 1, len(lines)):
            if lines[index].startswith("# %%"):
                break
            match = TITLE_LINE.match(lines[index])
            if match:
                return index, match.group("title").strip()
    raise SiteError(f"{module.source.as_posix()}: the first markdown cell must start with the module's title "
                    f"('# # Module {module.number}: {module.title}'), the heading of its web page")


def module_page(course: Course, module: CourseModule) -> str:
    """The module's learner edition with a box of its facts (from the manifest) under its title."""
    source = (course.root / module.source).read_text(encoding="utf-8")
    text = learner_source(module, source)
    index, _ = module_title(text, module)
    lines = text.splitlines()
    facts = ["", "# %% [markdown]", *(f"# {line}".rstrip() for line in module_facts(course, module)),
             "", "# %% [markdown]"]
    return "\n".join(lines[: index + 1] + facts + lines[index + 1 :]) + "\n"


def module_facts(course: Course, module: CourseModule) -> list[str]:
    manifest = course.manifest
    needs = [module_link(course, manifest.module(n)) for n in direct_prerequisites(manifest)[module.number]]
    closure = sorted(prerequisite_closure(manifest)[module.number])
    users = [m for m in manifest.modules if module.number in m.prerequisites]
    milestones = [m for m in manifest.milestones if module.number in m.requires]
    lines = [f":::{{admonition}} Module {module.number} at a glance", ":class: tip", ""]
    hours = f"{module.hours:g} hour{'' if module.hours == 1 else 's'}"
    lines.append(f"- **Tier**: {module.tier.capitalize()}; about {hours}, difficulty {module.difficulty} of 4.")
    if needs:
        lines.append(f"- **Builds on**: {', '.join(needs)} (all it needs: {compact(closure)}).")
    else:
        lines.append("- **Builds on**: nothing; you can start here.")
    if users:
        lines.append(f"- **Needed by**: {', '.join(module_link(course, m) for m in users)}.")
    lines.append(f"- **Exports**: `{module.package}`, what `tito module complete {module.number}` grades.")
    lines.append(f"- **Checkpoint**: {{ref}}`{module.capability} <checkpoint-{module.number}>`: "
                 f"*{module.question}*")
    if milestones:
        refs = ", ".join(f"{{ref}}`{m.name} <{milestone_label(m)}>`" for m in milestones)
        lines.append(f"- **Milestones that use it**: {refs}.")
    lines.append(f"- **Work on it**: `tito module start {module.number}`, then `tito module complete {module.number}`.")
    lines += [":::"]
    return lines


# ---- the landing page ------------------------------------------------------------------------------
def readme_quick_start(root: Path) -> str:
    """The README's quick-start command block, exactly as the README (and CI) has it."""
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quick start\n(?P<body>.*?)(?=^## )", readme, flags=re.MULTILINE | re.DOTALL)
    block = re.search(r"^```bash\n(?P<code>.*?)^```", section.group("body"), flags=re.MULTILINE | re.DOTALL) \
        if section else None
    if block is None:
        raise SiteError("README.md has no '## Quick start' section with a ```bash block; the landing page shows it")
    return f"```bash\n{block.group('code')}```"


def path_modules(course: Course, path: dict) -> list[CourseModule]:
    """The modules a learning path takes: everything its milestones need, then its extra modules,
    each with all its prerequisites, in course order (which puts every prerequisite first)."""
    manifest, closure = course.manifest, prerequisite_closure(course.manifest)
    numbers: set[str] = set()
    for name in path["milestones"]:
        try:
            milestone = manifest.milestone(name)
        except KeyError as error:
            raise SiteError(f"site/course.toml: path {path['name']!r}: {error.args[0]}") from None
        for number in milestone.requires:
            numbers |= {number} | closure[number]
    for number in path["then"]:
        try:
            module = manifest.module(number)
        except KeyError as error:
            raise SiteError(f"site/course.toml: path {path['name']!r}: {error.args[0]}") from None
        numbers |= {module.number} | closure[module.number]
    return [m for m in manifest.modules if m.number in numbers]


def learning_paths(course: Course) -> str:
    lines = []
    for path in course.settings.get("path", []):
        modules = path_modules(course, path)
        goals = ", ".join(f"{{ref}}`{name} <{milestone_label(course.manifest.milestone(name))}>`"
                          for name in path["milestones"])
        lines.append(f"**{path['name']}** ({compact(m.number for m in modules)}): {path['summary']} "
                     f"Reaches the milestone{'s' if len(path['milestones']) > 1 else ''} {goals}.")
        lines.append("")
        lines.append(" → ".join(module_link(course, m, m.number + " " + m.title) for m in modules))
        lines.append("")
    modules = course.manifest.modules
    lines.append(f"**The full course** ({modules[0].number}-{modules[-1].number}): every module in order; "
                 "the Big Picture shows which module needs which.")
    return "\n".join(lines)


def tier_overview(course: Course) -> str:
    lines = ["| tier | modules |", "|---|---|"]
    for tier in TIERS:
        members = [m for m in course.manifest.modules if m.tier == tier]
        if members:
            lines.append(f"| {tier.capitalize()} | " + " · ".join(module_link(course, m) for m in members) + " |")
    return "\n".join(lines)


def landing_page(course: Course) -> str:
    manifest = course.manifest
    built = len(course.paged)
    values = {
        "name": manifest.name,
        "motto": manifest.motto,
        "quick_start": readme_quick_start(course.root),
        "learning_paths": learning_paths(course),
        "tiers": tier_overview(course),
        "counts": f"Each of the {built} modules has its page." if built == len(manifest.modules) else
                  f"{built} of the {len(manifest.modules)} modules have a page so far; "
                  "the others are listed without a link until their source is written.",
    }
    return fill(template(course, "index.md"), values, "site/index.md")


# ---- the Big Picture ----------------------------------------------------------------------------------
def tier_tables(course: Course) -> str:
    manifest, direct = course.manifest, direct_prerequisites(course.manifest)
    lines = []
    for tier in TIERS:
        members = [m for m in manifest.modules if m.tier == tier]
        if not members:
            continue
        summary = course.settings.get("tiers", {}).get(tier, "")
        lines += [f"### {tier.capitalize()}", "", summary, "",
                  "| module | the question it answers | builds directly on | needs in all | hours | difficulty |",
                  "|---|---|---|---|---|---|"]
        for module in members:
            needs = ", ".join(direct[module.number]) or "-"
            every = compact(module.prerequisites) or "-"
            lines.append(f"| {module_link(course, module)} | {table_cell(module.question)} | {needs} | {every} | "
                         f"{module.hours:g} | {module.difficulty} of 4 |")
        lines.append("")
    return "\n".join(lines)


def big_picture_page(course: Course) -> str:
    def href(module: CourseModule) -> str | None:
        return f"{module_docname(module)}.html" if course.has_page(module) else None

    graph = "```{raw} html\n<div class=\"tt-graph-frame\">" + dependency_svg(course.manifest, href) + "</div>\n```"
    values = {"graph": graph, "tier_tables": tier_tables(course)}
    return fill(template(course, "big-picture.md"), values, "site/big-picture.md")


# ---- milestones ---------------------------------------------------------------------------------------
def milestones_page(course: Course) -> str:
    manifest = course.manifest
    summary = ["| milestone | year | uses modules | bar | measured here |", "|---|---|---|---|---|"]
    sections = []
    for milestone in manifest.milestones:
        results = [r for r in course.results if r.milestone == milestone.name]
        measured = "; ".join(f"{r.measured} ({r.setting})" for r in results) or "not measured here yet"
        summary.append(f"| {{ref}}`{milestone.name} <{milestone_label(milestone)}>` | {table_cell(milestone.year)} | "
                       f"{compact(milestone.requires)} | {table_cell(milestone.bar)} | {table_cell(measured)} |")
        run = (f"**{milestone.year}.** Run it with `tito milestone run {milestone.name}` "
               f"(the script: `{milestone.script}`, `--quick` for a smoke test in seconds).")
        sections += [f"({milestone_label(milestone)})=", f"## `{milestone.name}`: {milestone.title}", "", run, "",
                     f"- **Bar**: {milestone.bar}",
                     "- **Uses**: " + ", ".join(module_link(course, manifest.module(n)) for n in milestone.requires)]
        if not results:
            sections.append("- **Measured here**: not yet; the bar above is what a run must reach.")
        for result in results:
            sections.append(f"- **Measured here** ({result.setting}): {result.measured}. "
                            f"Command: `{result.command}`. Source: {result.source}")
        sections.append("")
    values = {"summary_table": "\n".join(summary), "milestone_sections": "\n".join(sections)}
    return fill(template(course, "milestones.md"), values, "site/milestones.md")


# ---- checkpoints --------------------------------------------------------------------------------------
def capability_statements(path: Path) -> list[str]:
    """'test_i_can_run_a_linear_layer' -> 'I can run a linear layer', for each test in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    statements = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            words = node.name[len("test_"):].split("_")
            words = ["I" if word == "i" else word for word in words]
            statements.append(" ".join(words)[:1].upper() + " ".join(words)[1:])
    return statements


def checkpoints_page(course: Course) -> str:
    sections = []
    for module in course.manifest.modules:
        test_file = CHECKPOINT_TESTS / f"test_checkpoint_{module.number}.py"
        sections += [f"(checkpoint-{module.number})=", f"## {module.number} {module.capability}", "",
                     f"*{module.question}* Module: {module_link(course, module)}.", ""]
        if (course.root / test_file).is_file():
            statements = capability_statements(course.root / test_file)
            runs = (f"`tito checkpoint test {module.number}` runs `{test_file.as_posix()}` on your exported "
                    "package; it checks that:")
            sections += [runs, ""]
            sections += [f"- {statement}." for statement in statements]
        else:
            sections.append("Its capability test comes with the module.")
        sections.append("")
    values = {"checkpoint_sections": "\n".join(sections)}
    return fill(template(course, "checkpoints.md"), values, "site/checkpoints.md")


# ---- the command reference ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    parser: argparse.ArgumentParser
    help: str

    @property
    def name(self) -> str:
        return " ".join(("tito", *self.words))


def subcommands(parser: argparse.ArgumentParser):
    """(name, parser, help) for each subcommand of `parser`, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name) or ""


def command_tree(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[Command]:
    """Every command of the parser, depth first: `tito`, `tito system`, `tito system info`, ..."""
    found = [Command(words, parser, parser.description or "")] if not words else []
    for name, sub, text in subcommands(parser):
        found.append(Command((*words, name), sub, text))
        found += command_tree(sub, (*words, name))
    return found


def help_text(parser: argparse.ArgumentParser) -> str:
    """The parser's --help, wrapped at a fixed width so that the page does not depend on the terminal."""
    parser.formatter_class = functools.partial(parser.formatter_class, width=HELP_WIDTH)
    return parser.format_help().rstrip()


def commands_page(course: Course, parser: argparse.ArgumentParser) -> str:
    commands = command_tree(parser)
    summary = ["| command | what it does |", "|---|---|"]
    sections = []
    for command in commands:
        label = command_label(command.words)
        summary.append(f"| {{ref}}`{command.name} <{label}>` | {table_cell(command.help)} |")
        level = "#" * min(2 + max(len(command.words) - 1, 0), 4)
        sections += [f"({label})=", f"{level} `{command.name}`", "", command.help, "",
                     "```text", help_text(command.parser), "```", ""]
    values = {"summary_table": "\n".join(summary), "command_sections": "\n".join(sections)}
    return fill(template(course, "commands.md"), values, "site/commands.md")


def instructor_page(course: Course, parser: argparse.ArgumentParser) -> str:
    wanted = course.settings.get("instructor_commands", [])
    present = [c for c in command_tree(parser) if len(c.words) == 1 and c.words[0] in wanted]
    lines = [f"- {{ref}}`{c.name} <{command_label(c.words)}>`: {c.help}" for c in present]
    values = {"instructor_commands": "\n".join(lines)}
    return fill(template(course, "instructor.md"), values, "site/instructor.md")


# ---- the table of contents ---------------------------------------------------------------------------
def table_of_contents(course: Course) -> str:
    """Jupyter Book's _toc.yml: the course, one part per tier, then milestones and reference."""
    lines = ["format: jb-book", "root: index", "parts:",
             "  - caption: The course", "    chapters:", "      - file: big-picture"]
    for tier in TIERS:
        members = [m for m in course.paged if m.tier == tier]
        if members:
            lines += [f"  - caption: {tier.capitalize()}", "    chapters:"]
            lines += [f"      - file: {module_docname(m)}" for m in members]
    lines += ["  - caption: Milestones and checkpoints", "    chapters:", "      - file: milestones",
              "      - file: checkpoints",
              "  - caption: Reference", "    chapters:", "      - file: commands", "      - file: instructor"]
    return "\n".join(lines) + "\n"


def book_pages(course: Course, parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every page of the book: its path in the book's source folder -> its text."""
    pages = {
        "_toc.yml": table_of_contents(course),
        "index.md": landing_page(course),
        "big-picture.md": big_picture_page(course),
        "milestones.md": milestones_page(course),
        "checkpoints.md": checkpoints_page(course),
        "commands.md": commands_page(course, parser),
        "instructor.md": instructor_page(course, parser),
    }
    for module in course.paged:
        pages[f"{module_docname(module)}.py"] = module_page(course, module)
    return pages
