"""CRM: contacts with vCard codes, printable business cards, campaign codes and mail-merge export."""
