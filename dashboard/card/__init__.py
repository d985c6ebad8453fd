"""The model card page's sections, one module each.

Each module has `render(choice)`, which draws its section for the chosen
model (`dashboard.state.Choice`) from the card the model carries, and shows
nothing when the card lacks what it needs. The page
(`dashboard/app_pages/model_card.py`) lists them in order; a new section is a
new module here and one line in that list. `labels` (the card's words) and
`tables` (its two-column tables) are shared by the sections.
"""
